/* Atomic file replacement (contract in atomic.h).
 *
 * Why each step: fsync before rename so the new name never points at data
 * still in the page cache (after a crash the target is either the old file or
 * the complete new one); fsync of the folder so the rename itself survives a
 * crash. The temporary name is "<path>.tmp.<pid>.<k>", created with O_EXCL,
 * k counting up past names that exist (a stale file from a crashed run, or
 * another context of this process saving the same path), so two writers never
 * share a temporary file. Mode 0666 minus the umask, like fopen. */
#include "atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define NB__TMP_TRIES 100

static nb_status io_err(nb_ctx *ctx, const nb__afile *f, const char *action, int e)
{
    return nb__err(ctx, NB_ERR_IO, "%s: %s: %s: %s", f->what, f->path, action, strerror(e));
}

static void drop(nb_ctx *ctx, nb__afile *f)
{
    if (f->fp)
        fclose(f->fp);
    f->fp = NULL;
    if (f->tmp) {
        unlink(f->tmp);
        nb__heap_free(ctx, f->tmp);
    }
    f->tmp = f->dir = NULL;
}

nb_status nb__afile_open(nb_ctx *ctx, nb__afile *f, const char *path, const char *what)
{
    f->fp = NULL;
    f->tmp = f->dir = NULL;
    f->path = path;
    f->what = what;
    /* one block: the temporary name, then the folder's name (taken now, so
     * that nothing after the rename can fail for want of memory) */
    size_t plen = strlen(path), cap = plen + 64;
    f->tmp = nb__heap_alloc(ctx, cap + plen + 2);
    if (!f->tmp)
        return nb__err(ctx, NB_ERR_NOMEM, "%s: %s: allocator failed for %zu bytes", what, path,
                       cap + plen + 2);
    f->dir = f->tmp + cap;
    const char *slash = strrchr(path, '/');
    if (!slash) {
        strcpy(f->dir, ".");
    } else {
        size_t len = slash == path ? 1 : (size_t)(slash - path); /* "/name": the root */
        memcpy(f->dir, path, len);
        f->dir[len] = '\0';
    }
    int fd = -1;
    for (int k = 0; k < NB__TMP_TRIES && fd < 0; k++) {
        snprintf(f->tmp, cap, "%s.tmp.%ld.%d", path, (long)getpid(), k);
        fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        int e = errno;
        nb__heap_free(ctx, f->tmp);
        f->tmp = f->dir = NULL;
        return io_err(ctx, f, "cannot create a temporary file beside it", e);
    }
    f->fp = fdopen(fd, "wb");
    if (!f->fp) {
        int e = errno;
        close(fd);
        drop(ctx, f);
        return io_err(ctx, f, "fdopen", e);
    }
    return NB_OK;
}

nb_status nb__afile_write(nb_ctx *ctx, nb__afile *f, const void *buf, size_t n)
{
    if (n && fwrite(buf, 1, n, f->fp) != n)
        return io_err(ctx, f, "write", errno ? errno : EIO);
    return NB_OK;
}

void nb__afile_abort(nb_ctx *ctx, nb__afile *f) { drop(ctx, f); }

/* fsync of a folder; 0 or -1 with *err set */
static int sync_folder(const char *dir, int *err)
{
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    int rc = fsync(fd);
    *err = errno;
    /* some file systems cannot sync a folder; that is not a failed save */
    if (rc != 0 && (*err == EINVAL || *err == ENOTSUP || *err == EBADF))
        rc = 0;
    close(fd);
    return rc;
}

nb_status nb__afile_commit(nb_ctx *ctx, nb__afile *f)
{
    if (fflush(f->fp) != 0) {
        int e = errno;
        drop(ctx, f);
        return io_err(ctx, f, "write", e);
    }
    if (fsync(fileno(f->fp)) != 0) {
        int e = errno;
        drop(ctx, f);
        return io_err(ctx, f, "fsync", e);
    }
    int rc = fclose(f->fp);
    f->fp = NULL;
    if (rc != 0) {
        int e = errno;
        drop(ctx, f);
        return io_err(ctx, f, "close", e);
    }
    if (rename(f->tmp, f->path) != 0) {
        int e = errno;
        drop(ctx, f);
        return io_err(ctx, f, "rename of the temporary file over it", e);
    }
    int e = 0;
    rc = sync_folder(f->dir, &e);
    nb__heap_free(ctx, f->tmp); /* renamed: nothing to remove any more */
    f->tmp = f->dir = NULL;
    if (rc != 0)
        return io_err(ctx, f, "written, but fsync of its folder failed", e);
    return NB_OK;
}
