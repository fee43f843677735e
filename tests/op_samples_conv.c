/* Samples of the convolution ops (see op_samples.h): a grid of strides,
 * paddings, dilations and groups, bias or none, strided inputs, conv1d. */
#include "op_samples.h"

#include <stdio.h>

#define MK(...) sample_input(ctx, r, V_NORMAL, NB_SHAPE(__VA_ARGS__))

/* s->axes: stride h w, padding h w, dilation h w, output_padding h w;
 * s->axis: groups; s->keep: 1 = input given permuted, 2 = conv1d */
static nb_conv_opts opts_of(const op_sample *s)
{
    nb_conv_opts o = nb_conv_opts_default();
    for (int i = 0; i < 2; i++) {
        o.stride[i] = s->axes[0 + i];
        o.padding[i] = s->axes[2 + i];
        o.dilation[i] = s->axes[4 + i];
        o.output_padding[i] = s->axes[6 + i];
    }
    o.groups = s->axis;
    o.relu = s->f[0] != 0;
    o.algo = (int)s->f[1];
    o.max_pool = s->f[2] != 0;
    return o;
}

static void set_opts(op_sample *s, int sh, int sw, int ph, int pw, int dh, int dw, int g)
{
    int v[8] = {sh, sw, ph, pw, dh, dw, 0, 0};
    memcpy(s->axes, v, sizeof v);
    s->axis = g;
}

static nb_tensor *fn_conv2d(nb_ctx *ctx, nb_tensor *const *x, int n, void *user)
{
    const op_sample *s = user;
    nb_conv_opts o = opts_of(s);
    nb_tensor *in = s->keep == 1 ? nb_permute(ctx, x[0], NB_AXES(2, 3, 0, 1)) : x[0];
    if (s->keep == 2)
        return nb_conv1d(ctx, in, x[1], n > 2 ? x[2] : NULL, &o);
    return nb_conv2d(ctx, in, x[1], n > 2 ? x[2] : NULL, &o);
}

bool gen_conv2d(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    int64_t out = 0;
    s->n_in = 3;
    switch (v) {
    case 0: s->in[0] = MK(2, 3, 5, 5); s->in[1] = MK(4, 3, 3, 3); out = 4; set_opts(s, 1, 1, 1, 1, 1, 1, 1); break;
    case 1: s->in[0] = MK(1, 2, 7, 6); s->in[1] = MK(3, 2, 3, 2); s->n_in = 2; set_opts(s, 2, 2, 0, 0, 1, 1, 1); break;
    case 2: s->in[0] = MK(1, 2, 7, 7); s->in[1] = MK(2, 2, 3, 3); out = 2; set_opts(s, 1, 1, 2, 2, 2, 2, 1); break;
    case 3: s->in[0] = MK(2, 4, 5, 5); s->in[1] = MK(6, 2, 3, 3); out = 6; set_opts(s, 1, 1, 1, 1, 1, 1, 2); break;
    case 4: s->in[0] = MK(1, 3, 6, 6); s->in[1] = MK(3, 1, 3, 3); out = 3; set_opts(s, 2, 2, 1, 1, 1, 1, 3); break;
    case 5: s->in[0] = MK(2, 3, 4, 4); s->in[1] = MK(5, 3, 1, 1); out = 5; set_opts(s, 1, 1, 0, 0, 1, 1, 1); break;
    case 6: s->in[0] = MK(1, 2, 6, 8); s->in[1] = MK(3, 2, 2, 3); out = 3; set_opts(s, 2, 1, 1, 0, 1, 2, 1); break;
    case 7: s->in[0] = MK(5, 5, 1, 3); s->in[1] = MK(2, 3, 3, 3); out = 2; s->keep = 1; set_opts(s, 1, 1, 1, 1, 1, 1, 1); break;
    case 8: s->in[0] = MK(2, 3, 10); s->in[1] = MK(4, 3, 3); out = 4; s->keep = 2; set_opts(s, 1, 2, 0, 1, 1, 1, 1); break;
    case 9: s->in[0] = MK(2, 4, 9, 9); s->in[1] = MK(8, 4, 3, 3); out = 8; set_opts(s, 2, 2, 1, 1, 1, 1, 1); break;
    case 10: /* the fused ReLU, with groups */
        s->in[0] = MK(2, 4, 6, 6); s->in[1] = MK(6, 2, 3, 3); out = 6; set_opts(s, 1, 1, 1, 1, 1, 1, 2);
        s->f[0] = 1;
        break;
    case 11: /* the fused ReLU on a 1x1 conv */
        s->in[0] = MK(3, 3, 4, 4); s->in[1] = MK(4, 3, 1, 1); out = 4; set_opts(s, 1, 1, 0, 0, 1, 1, 1);
        s->f[0] = 1;
        break;
    /* Winograd F(2x2, 3x3), forced on small channel counts (12-15, 17) and
     * chosen by AUTO at 8 channels (16): paddings 0-2, odd and uneven sizes
     * (partial tiles), a one-tile output, the fused ReLU */
    case 12: s->in[0] = MK(2, 3, 6, 6); s->in[1] = MK(4, 3, 3, 3); out = 4; set_opts(s, 1, 1, 1, 1, 1, 1, 1);
        s->f[0] = 1; s->f[1] = NB_CONV_WINOGRAD; break;
    case 13: s->in[0] = MK(1, 2, 7, 5); s->in[1] = MK(3, 2, 3, 3); out = 3; set_opts(s, 1, 1, 0, 0, 1, 1, 1);
        s->f[1] = NB_CONV_WINOGRAD; break;
    case 14: s->in[0] = MK(2, 2, 4, 5); s->in[1] = MK(2, 2, 3, 3); s->n_in = 2; set_opts(s, 1, 1, 2, 2, 1, 1, 1);
        s->f[1] = NB_CONV_WINOGRAD; break;
    case 15: s->in[0] = MK(3, 3, 5, 6); s->in[1] = MK(2, 3, 3, 3); out = 2; set_opts(s, 1, 1, 1, 0, 1, 1, 1);
        s->f[0] = 1; s->f[1] = NB_CONV_WINOGRAD; break;
    case 16: s->in[0] = MK(2, 8, 6, 6); s->in[1] = MK(8, 8, 3, 3); out = 8; set_opts(s, 1, 1, 1, 1, 1, 1, 1); break;
    case 17: s->in[0] = MK(1, 2, 3, 3); s->in[1] = MK(2, 2, 3, 3); out = 2; set_opts(s, 1, 1, 0, 0, 1, 1, 1);
        s->f[1] = NB_CONV_WINOGRAD; break;
    /* the fused 2x2 max pooling: im2col and Winograd, odd sizes, with and
     * without the ReLU, with stride and groups */
    case 18: s->in[0] = MK(2, 3, 6, 7); s->in[1] = MK(4, 3, 3, 3); out = 4; set_opts(s, 1, 1, 1, 1, 1, 1, 1);
        s->f[0] = 1; s->f[1] = NB_CONV_IM2COL; s->f[2] = 1; break;
    case 19: s->in[0] = MK(2, 3, 7, 6); s->in[1] = MK(4, 3, 3, 3); out = 4; set_opts(s, 1, 1, 1, 1, 1, 1, 1);
        s->f[0] = 1; s->f[1] = NB_CONV_WINOGRAD; s->f[2] = 1; break;
    case 20: s->in[0] = MK(1, 2, 6, 6); s->in[1] = MK(3, 2, 3, 3); out = 3; set_opts(s, 1, 1, 0, 0, 1, 1, 1);
        s->f[1] = NB_CONV_WINOGRAD; s->f[2] = 1; break;
    case 21: s->in[0] = MK(1, 4, 9, 9); s->in[1] = MK(4, 2, 3, 3); s->n_in = 2; set_opts(s, 2, 2, 1, 1, 1, 1, 2);
        s->f[2] = 1; break;
    /* even output widths: im2col's output rows by parity (two stride-2s convs) */
    case 22: s->in[0] = MK(2, 3, 6, 8); s->in[1] = MK(4, 3, 3, 3); out = 4; set_opts(s, 1, 1, 1, 1, 1, 1, 1);
        s->f[0] = 1; s->f[1] = NB_CONV_IM2COL; s->f[2] = 1; break;
    case 23: s->in[0] = MK(1, 4, 7, 8); s->in[1] = MK(6, 2, 3, 3); out = 6; set_opts(s, 1, 2, 1, 1, 1, 1, 2);
        s->f[2] = 1; break;
    default: return false;
    }
    if (s->n_in == 3)
        s->in[2] = MK(out);
    s->fn = fn_conv2d;
    const char *in = s->keep == 1 ? "x0.permute(2, 3, 0, 1)" : "x0";
    if (s->keep == 2)
        snprintf(s->expr, sizeof s->expr, "F.conv1d(%s, x1, x2, stride=%d, padding=%d, dilation=%d, groups=%d)",
                 in, s->axes[1], s->axes[3], s->axes[5], s->axis);
    else
        snprintf(s->expr, sizeof s->expr,
                 "%s%sF.conv2d(%s, x1, %s, stride=(%d, %d), padding=(%d, %d), dilation=(%d, %d), groups=%d)%s%s",
                 s->f[2] ? "F.max_pool2d(" : "", s->f[0] ? "F.relu(" : "", in,
                 s->n_in == 3 ? "x2" : "None", s->axes[0], s->axes[1], s->axes[2], s->axes[3],
                 s->axes[4], s->axes[5], s->axis, s->f[0] ? ")" : "", s->f[2] ? ", 2)" : "");
    return true;
}

static nb_tensor *fn_convt(nb_ctx *ctx, nb_tensor *const *x, int n, void *user)
{
    nb_conv_opts o = opts_of(user);
    return nb_conv_transpose2d(ctx, x[0], x[1], n > 2 ? x[2] : NULL, &o);
}

bool gen_conv_transpose2d(nb_ctx *ctx, nb_rng *r, int v, op_sample *s)
{
    int64_t out = 0;
    s->n_in = 3;
    switch (v) {
    case 0: s->in[0] = MK(2, 3, 4, 4); s->in[1] = MK(3, 2, 3, 3); out = 2;
        set_opts(s, 2, 2, 1, 1, 1, 1, 1); s->axes[6] = s->axes[7] = 1; break;
    case 1: s->in[0] = MK(1, 2, 3, 3); s->in[1] = MK(2, 3, 2, 2); s->n_in = 2; set_opts(s, 1, 1, 0, 0, 1, 1, 1); break;
    case 2: s->in[0] = MK(1, 4, 3, 3); s->in[1] = MK(4, 1, 3, 3); out = 2; set_opts(s, 2, 2, 0, 0, 2, 2, 2); break;
    case 3: s->in[0] = MK(2, 3, 3, 3); s->in[1] = MK(3, 4, 1, 1); out = 4; set_opts(s, 1, 1, 0, 0, 1, 1, 1); break;
    case 4: s->in[0] = MK(1, 2, 4, 3); s->in[1] = MK(2, 2, 2, 3); out = 2;
        set_opts(s, 3, 2, 1, 0, 1, 1, 1); s->axes[6] = 2; break;
    default: return false;
    }
    if (s->n_in == 3)
        s->in[2] = MK(out);
    s->fn = fn_convt;
    snprintf(s->expr, sizeof s->expr,
             "F.conv_transpose2d(x0, x1, %s, stride=(%d, %d), padding=(%d, %d), output_padding=(%d, %d), "
             "groups=%d, dilation=(%d, %d))",
             s->n_in == 3 ? "x2" : "None", s->axes[0], s->axes[1], s->axes[2], s->axes[3], s->axes[6],
             s->axes[7], s->axis, s->axes[4], s->axes[5]);
    return true;
}
