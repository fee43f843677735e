#!/usr/bin/python3
"""Checks `nabla report`'s output against the run folder it came from.

    report_check.py RUN_FOLDER [--synthetic]   report.html and plots/*.svg
    report_check.py --png FILE WIDTH HEIGHT    a valid, non-blank PNG of that size

Expectations come from the CSVs present in RUN_FOLDER (so a real run checks
the same way as the synthetic one): every plot the files call for exists in
the page and as plots/ID.svg (the same text), has data-points > 0 equal to
its series' points, and each series' data-values are the file's values:
all finite ones (positive ones on a log axis) in file order, or, for series
over 1000 points, at most 1000 of them that are all recorded points, in
order, including the minimum and the maximum (min/max decimation). The
alarms table holds the alarms, the config text is escaped, and the page loads
nothing: no script, no event handler, no external resource. --synthetic adds
checks on the values tests/report_test.sh planted. Standard library only."""
import csv
import html.parser
import math
import os
import re
import struct
import sys
import xml.etree.ElementTree as ET
import zlib

failures = []


def fail(msg):
    failures.append(msg)
    print("  FAIL " + msg)


def close(a, b):
    return a == b or abs(a - b) <= 1e-12 * max(1.0, abs(a), abs(b))


def g15(v):
    return "%.15g" % v


def sanitize(s):
    return re.sub(r"[^A-Za-z0-9._-]", "_", s)


# ---- the page -----------------------------------------------------------------------
class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.svgs = {}          # id -> {"attrs": ..., "series": {name: [(x, y)]}}
        self.svg = None
        self.tables = []        # [{"class": ..., "rows": [[cell text]]}]
        self.table = None
        self.cell = None
        self.pre = None
        self.config = None
        self.none = []          # texts of <p class="none">
        self.p_none = None
        self.bad = []           # scripts, handlers, external loads

    # elements the page opens and closes explicitly: nesting is checked
    TRACK = {"section", "figure", "figcaption", "table", "tr", "td", "th", "div", "p", "pre",
             "nav", "h1", "h2", "h3", "svg", "g", "text", "title", "polyline", "html", "head",
             "body", "style"}
    stack = None

    def handle_startendtag(self, tag, attrs):
        self.start(tag, attrs)

    def handle_starttag(self, tag, attrs):
        if self.stack is None:
            self.stack = []
        if tag in self.TRACK:
            self.stack.append(tag)
        self.start(tag, attrs)

    def start(self, tag, attrs):
        a = dict(attrs)
        for k, v in attrs:
            if k.startswith("on"):
                self.bad.append("event handler %s on <%s>" % (k, tag))
            if k in ("src", "href", "srcset", "data") and v and not (
                    v.startswith("#") or v.startswith("plots/")):
                self.bad.append("%s=%r on <%s>" % (k, v, tag))
        if tag in ("script", "link", "img", "iframe", "object", "embed", "base"):
            self.bad.append("<%s>" % tag)
        if tag == "svg":
            self.svg = {"attrs": a, "series": {}}
            if a.get("id") in self.svgs:
                self.bad.append("two svgs with id %s" % a.get("id"))
            self.svgs[a.get("id")] = self.svg
        elif tag in ("polyline", "path") and self.svg is not None and "data-series" in a:
            name = a["data-series"]
            if name in self.svg["series"]:
                self.bad.append("two series %r in %s" % (name, self.svg["attrs"].get("id")))
            pts = []
            for pair in a.get("data-values", "").split():
                x, y = pair.split(",")
                pts.append((float(x), float(y)))
            self.svg["series"][name] = pts
        elif tag == "table":
            self.table = {"class": a.get("class", ""), "rows": []}
            self.tables.append(self.table)
        elif tag == "tr" and self.table is not None:
            self.table["rows"].append([])
        elif tag in ("td", "th") and self.table is not None:
            self.cell = []
        elif tag == "pre" and a.get("class") == "config":
            self.pre = []
        elif tag == "p" and a.get("class") == "none":
            self.p_none = []

    def handle_endtag(self, tag):
        if tag in self.TRACK:
            if not self.stack or self.stack[-1] != tag:
                self.bad.append("</%s> closes <%s>" % (tag, self.stack[-1] if self.stack else "nothing"))
            else:
                self.stack.pop()
        if tag == "svg":
            self.svg = None
        elif tag in ("td", "th") and self.cell is not None:
            self.table["rows"][-1].append("".join(self.cell))
            self.cell = None
        elif tag == "table":
            self.table = None
        elif tag == "pre" and self.pre is not None:
            self.config = "".join(self.pre)
            self.pre = None
        elif tag == "p" and self.p_none is not None:
            self.none.append("".join(self.p_none))
            self.p_none = None

    def handle_data(self, data):
        for buf in (self.cell, self.pre, self.p_none):
            if buf is not None:
                buf.append(data)


def read_csv(path):
    with open(path, newline="") as f:
        lines = [l for l in f if l.strip() and not l.startswith("#")]
    return list(csv.DictReader(lines))


def num(s):
    return float(s) if s.strip() else float("nan")  # an empty cell: not applicable


def check_series(page, pid, name, expect, present=True):
    """expect: [(x, y)] from the files, in file order."""
    svg = page.svgs.get("plot-" + pid)
    where = "%s/%s" % (pid, name)
    if svg is None:  # need() said whether it should be there
        return
    log_y = svg["attrs"].get("data-yscale") == "log"
    log_x = svg["attrs"].get("data-xscale") == "log"
    exp = [(x, y) for x, y in expect if math.isfinite(x) and math.isfinite(y)
           and not (log_y and y <= 0) and not (log_x and x <= 0)]
    got = svg["series"].get(name)
    if not present or not exp:
        if got is not None:
            fail("%s: a series that should not be there (%d points)" % (where, len(got)))
        return
    if got is None:
        fail("%s: missing (series: %s)" % (where, ", ".join(svg["series"])))
        return
    if len(exp) <= 1000:
        if len(got) != len(exp) or not all(close(a[0], b[0]) and close(a[1], b[1])
                                           for a, b in zip(got, exp)):
            bad = next((i for i, (a, b) in enumerate(zip(got, exp)) if a != b), min(len(got), len(exp)))
            fail("%s: %d points, want %d; first difference at %d: %s vs %s" % (
                where, len(got), len(exp), bad, got[bad:bad + 1], exp[bad:bad + 1]))
        return
    # downsampled: recorded points in order, with the ends and the extremes
    if got[0] != exp[0] or got[-1] != exp[-1]:
        fail("%s: downsampled without its first or last point" % where)
    if len(got) > 1000:
        fail("%s: %d points, more than 1000" % (where, len(got)))
    pos = {}
    for i, p in enumerate(exp):
        pos.setdefault(p, i)
    idx = [pos.get(p) for p in got]
    if None in idx:
        fail("%s: plotted point %s is not a recorded point" % (where, got[idx.index(None)]))
    elif idx != sorted(idx) or len(set(idx)) != len(idx):
        fail("%s: downsampled points out of order" % where)
    ys = [y for _, y in exp]
    gy = [y for _, y in got]
    if min(ys) not in gy or max(ys) not in gy:
        fail("%s: the minimum %g or the maximum %g is not plotted" % (where, min(ys), max(ys)))


def check_page(run, synthetic):
    html_path = os.path.join(run, "report.html")
    text = open(html_path, encoding="utf-8").read()
    page = Page()
    page.feed(text)
    page.close()
    if page.stack:
        page.bad.append("unclosed elements: %s" % page.stack)
    for b in page.bad:
        fail("page: " + b)
    if "<script" in text.lower():
        fail("page: '<script' appears in the HTML (unescaped data?)")

    # every inline svg: its file has the same text, parses as XML, counts its points
    for m in re.finditer(r"<svg\b.*?</svg>", text, re.S):
        svg_text = m.group(0)
        sid = re.search(r'\bid="plot-([^"]+)"', svg_text)
        if not sid:
            fail("page: an svg without id=plot-...")
            continue
        pid = sid.group(1)
        path = os.path.join(run, "plots", pid + ".svg")
        if not os.path.exists(path):
            fail("%s: no file %s" % (pid, path))
            continue
        if open(path, encoding="utf-8").read() != svg_text:
            fail("%s: plots/%s.svg differs from the inlined svg" % (pid, pid))
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as e:
            fail("%s: %s is not XML: %s" % (pid, path, e))
            continue
        if root.tag != "{http://www.w3.org/2000/svg}svg":
            fail("%s: root element %s" % (pid, root.tag))
        info = page.svgs["plot-" + pid]
        pts = int(info["attrs"].get("data-points", "0"))
        total = sum(len(s) for s in info["series"].values())
        if pts <= 0 or pts != total:
            fail("%s: data-points %d, series hold %d" % (pid, pts, total))
        if root.find(".//{http://www.w3.org/2000/svg}title") is None:
            fail("%s: no title" % pid)

    def need(pid, *series):
        """Is plot-pid there? It must be when its series (lists of (x, y)) have a
        finite point, unless all are <= 0 (nothing to show on a log axis)."""
        pts = [(x, y) for l in series for x, y in l if math.isfinite(x) and math.isfinite(y)]
        if "plot-" + pid in page.svgs:
            if not pts:
                fail("plot-%s: plotted without finite values" % pid)
            return True
        if any(y > 0 for _, y in pts):
            fail("plot-%s: missing (plots: %s)" % (pid, " ".join(sorted(page.svgs))))
        elif not any("no finite values" in n or "not recorded" in n.lower() or "no " in n.lower()
                     for n in page.none):
            fail("plot-%s: absent without a note" % pid)
        return False

    def absent_note(what):
        if not any("not recorded in this run" in n.lower() for n in page.none):
            fail("%s: no 'not recorded in this run' note" % what)

    # log.csv
    log = read_csv(os.path.join(run, "log.csv"))
    ep = [num(r["epoch"]) for r in log]
    col = {c: list(zip(ep, [num(r[c]) for r in log])) for c in (
        "train_loss", "val_loss", "train_acc", "val_acc", "val_topk", "lr")}
    if need("loss", col["train_loss"], col["val_loss"]):
        for c in ("train_loss", "val_loss"):
            check_series(page, "loss", c, col[c])
    acc_cols = ("train_acc", "val_acc", "val_topk")
    if need("accuracy", *[col[c] for c in acc_cols]):
        for c in acc_cols:
            check_series(page, "accuracy", c, col[c])

    # steps.csv
    sp = os.path.join(run, "steps.csv")
    if os.path.exists(sp):
        steps = read_csv(sp)
        st = [num(r["step"]) for r in steps]
        for pid, c in (("step-loss", "loss"), ("lr", "lr"), ("grad-total", "grad_norm")):
            pts = list(zip(st, [num(r[c]) for r in steps]))
            if need(pid, pts):
                check_series(page, pid, c, pts)
        if "plot-grad-total" in page.svgs and \
                page.svgs["plot-grad-total"]["attrs"].get("data-yscale") != "log":
            fail("grad-total: not on a log axis")
    else:
        absent_note("steps.csv")
        if need("lr", col["lr"]):
            check_series(page, "lr", "lr", col["lr"])

    # params.csv: one series per weight (not bias) parameter, log axes
    pp = os.path.join(run, "params.csv")
    if os.path.exists(pp):
        params = read_csv(pp)
        names = list(dict.fromkeys(r["name"] for r in params))
        weights = [n for n in names if n.split(".")[-1] != "bias"] or names
        for pid, c in (("grad-norm", "grad_norm"), ("update-ratio", "update_ratio")):
            if not need(pid, [(num(r["step"]), num(r[c])) for r in params if r["name"] in weights]):
                continue
            if page.svgs["plot-" + pid]["attrs"].get("data-yscale") != "log":
                fail("%s: not on a log axis" % pid)
            for n in names:
                check_series(page, pid, n, [(num(r["step"]), num(r[c])) for r in params
                                            if r["name"] == n], present=n in weights)
        table = [t for t in page.tables if t["rows"] and t["rows"][0][:1] == ["parameter"]]
        if not table or [r[0] for r in table[0]["rows"][1:]] != names:
            fail("params: the last-values table does not list %s" % names)
    else:
        absent_note("params.csv")

    # acts.csv
    ap = os.path.join(run, "acts.csv")
    if os.path.exists(ap):
        acts = read_csv(ap)
        layers = list(dict.fromkeys(r["layer"] for r in acts))
        kind = {r["layer"]: r["kind"] for r in reversed(acts)}
        for pid, c, kinds in (("act-dead", "dead_frac", ("relu",)),
                              ("act-sat", "sat_frac", ("sigmoid", "tanh")), ("act-std", "std", ())):
            rows = {l: [(num(r["step"]), num(r[c])) for r in acts if r["layer"] == l] for l in layers}
            want = [l for l in layers if any(k in kind[l] for k in kinds) or
                    any(math.isfinite(y) and y > 0 for _, y in rows[l])]
            if not want:
                if "plot-" + pid in page.svgs:
                    fail("%s: plotted without such layers" % pid)
                continue
            if need(pid, *[rows[l] for l in want]):
                for l in layers:
                    check_series(page, pid, l, rows[l], present=l in want)
    else:
        absent_note("acts.csv")

    # hist.csv: first, middle and last recorded step of each parameter and kind
    hp = os.path.join(run, "hist.csv")
    if os.path.exists(hp):
        hist = read_csv(hp)
        for n in dict.fromkeys(r["name"] for r in hist):
            for what in ("weight", "grad"):
                rows = [r for r in hist if r["name"] == n and r["what"] == what]
                if not rows:
                    continue
                pid = sanitize("hist-%s-%s" % (n, what))
                k = len(rows)
                picks = [rows[0], rows[k // 2], rows[-1]] if k >= 3 else rows
                names = ["step " + g15(num(r["step"])) for r in picks]
                exp = {}
                for r, sname in zip(picks, names):
                    lo, hi = num(r["lo"]), num(r["hi"])
                    counts = [float(c) for c in r["counts"].split()]
                    exp[sname] = [(lo + (hi - lo) * (i + 0.5) / len(counts), c)
                                  for i, c in enumerate(counts)]
                if not need(pid, *exp.values()):
                    continue
                names = [sname for sname in names if any(
                    math.isfinite(x) for x, _ in exp[sname])]
                if sorted(page.svgs["plot-" + pid]["series"]) != sorted(names):
                    fail("%s: series %s, want %s" % (pid, list(page.svgs["plot-" + pid]["series"]), names))
                for sname in names:
                    check_series(page, pid, sname, exp[sname])
    else:
        absent_note("hist.csv")

    # alarms.csv
    alp = os.path.join(run, "alarms.csv")
    alarms = read_csv(alp) if os.path.exists(alp) else None
    if alarms:
        t = [t for t in page.tables if t["class"] == "alarms"]
        cols = "epoch,step,kind,where,value,threshold,action,message".split(",")
        if not t:
            fail("alarms: no table")
        else:
            rows = t[0]["rows"]
            if rows[0] != cols:
                fail("alarms: header %s" % rows[0])
            want = [[a[c] for c in cols] for a in alarms[:1000]]
            if rows[1:] != want:
                fail("alarms: table rows differ from alarms.csv:\n%s\n%s" % (rows[1:], want))
    elif alarms is None:
        absent_note("alarms.csv")

    # manifest.json: the config text, escaped
    mp = os.path.join(run, "manifest.json")
    if os.path.exists(mp):
        import json
        man = json.load(open(mp))
        if man.get("config") is not None and page.config != man["config"]:
            fail("config: the page's text %r is not the manifest's %r" % (page.config, man["config"]))
        kv = [t for t in page.tables if t["class"] == "kv"]
        keys = [r[0] for t in kv for r in t["rows"]]
        for k in man:
            if k != "config" and k not in keys:
                fail("manifest: key %s not shown" % k)
    else:
        absent_note("manifest.json")

    # lr_find.csv
    lp = os.path.join(run, "lr_find.csv")
    if os.path.exists(lp):
        lf = read_csv(lp)
        pts = {c: [(num(r["lr"]), num(r[c])) for r in lf] for c in ("loss", "smoothed")}
        if need("lr-find", *pts.values()):
            info = page.svgs["plot-lr-find"]
            if info["attrs"].get("data-xscale") != "log":
                fail("lr-find: x not on a log axis")
            for c in ("loss", "smoothed"):
                check_series(page, "lr-find", c, pts[c])
            sug = [l.split()[2] for l in open(lp) if l.startswith("# suggestion")]
            if sug and not close(float(info["attrs"].get("data-vline", "nan")), float(sug[-1])):
                fail("lr-find: data-vline %s, suggestion %s" % (info["attrs"].get("data-vline"), sug))
    else:
        absent_note("lr_find.csv")

    if synthetic:
        sl = page.svgs.get("plot-step-loss", {"series": {}})["series"].get("loss", [])
        if not (0 < len(sl) <= 1000) or (1234.0, 50.0) not in sl:
            fail("synthetic: step-loss has %d points, the spike at step 1234: %s" % (
                len(sl), (1234.0, 50.0) in sl))
        if "min/max decimation" not in text:
            fail("synthetic: no note on downsampling")
        fc2 = page.svgs.get("plot-grad-norm", {"series": {}})["series"].get("fc2.weight", [])
        if len(fc2) != 498 or fc2[0][0] != 15:
            fail("synthetic: fc2.weight grad norms should lose step 5 (0) and 10 (nan): %d" % len(fc2))
        if "value &le; 0 not shown" not in text:
            fail("synthetic: no note on the value left out of the log axis")
        if "&lt;script&gt;alert(1)&lt;/script&gt;" not in text or \
                "&lt;script&gt;alert(&#39;config&#39;)&lt;/script&gt;" not in text:
            fail("synthetic: the escaped <script> of the alarm or the config is not in the page")
        if "val_topk" in page.svgs.get("plot-accuracy", {"series": {}})["series"]:
            fail("synthetic: val_topk (all NaN) plotted")
        if len(page.svgs) != 10 + 6 + 1:
            fail("synthetic: %d plots, want 17: %s" % (len(page.svgs), sorted(page.svgs)))
        for pid in ("step-loss", "grad-norm", "update-ratio", "grad-total"):
            if page.svgs.get("plot-" + pid, {"attrs": {}})["attrs"].get("data-yscale") != "log":
                fail("synthetic: %s not on a log axis" % pid)
    return page


# ---- PNG ---------------------------------------------------------------------------
def check_png(path, w, h):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return fail("%s: not a PNG" % path)
    pos, idat, ihdr = 8, b"", None
    while pos + 8 <= len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        crc = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]
        if zlib.crc32(kind + body) & 0xffffffff != crc:
            return fail("%s: bad CRC in %s" % (path, kind))
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + n
    if not ihdr:
        return fail("%s: no IHDR" % path)
    width, height, depth, ctype = ihdr[:4]
    if (width, height) != (w, h):
        return fail("%s: %dx%d, want %dx%d" % (path, width, height, w, h))
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}.get(ctype)
    if depth != 8 or not bpp:
        return fail("%s: bit depth %d, colour type %d" % (path, depth, ctype))
    raw = zlib.decompress(idat)
    stride = 1 + width * bpp
    if len(raw) != height * stride:
        return fail("%s: %d bytes of pixels, want %d" % (path, len(raw), height * stride))
    # a blank (one colour) image filters to at most a few distinct rows
    rows = {raw[i * stride:(i + 1) * stride] for i in range(height)}
    if len(rows) < 100:
        fail("%s: only %d distinct rows: blank?" % (path, len(rows)))


def main():
    args = sys.argv[1:]
    if args and args[0] == "--png":
        check_png(args[1], int(args[2]), int(args[3]))
    elif args:
        check_page(args[0], "--synthetic" in args[1:])
    else:
        print(__doc__)
        return 2
    if failures:
        print("report_check: %d failures" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
