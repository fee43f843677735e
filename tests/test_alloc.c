/* After warm-up a training step makes no heap allocation.
 *
 * Two counters: the context's allocator hook (nabla's own allocations), and,
 * outside sanitizer builds, malloc itself, replaced in this executable, which
 * also sees OpenMP's and OpenBLAS's allocations. The step is a real one: an
 * MLP 784-256-10 on a batch of 64 with dropout, cross-entropy, backward and
 * an SGD update, on two threads so the parallel kernels and BLAS run. */
#include <nabla.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static atomic_long heap_calls;
static atomic_int counting;

#ifndef NB_NO_MALLOC_HOOK
/* glibc's own entry points; defining malloc & co here replaces them for the
 * whole process (glibc supports this, see "Replacing malloc"). */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static void note(void)
{
    if (atomic_load_explicit(&counting, memory_order_relaxed))
        atomic_fetch_add(&heap_calls, 1);
}
void *malloc(size_t n) { note(); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { note(); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { note(); return __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }
void *aligned_alloc(size_t al, size_t n) { note(); return __libc_memalign(al, n); }
void *memalign(size_t al, size_t n) { note(); return __libc_memalign(al, n); }
int posix_memalign(void **out, size_t al, size_t n)
{
    note();
    void *p = __libc_memalign(al, n);
    if (!p)
        return 12; /* ENOMEM */
    *out = p;
    return 0;
}
#endif

static long hook_calls;

static void *hook_alloc(size_t size, size_t align, void *user)
{
    (void)user;
    hook_calls++;
    void *p = NULL;
    return posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size) ? NULL : p;
}

static void hook_free(void *p, void *user)
{
    (void)user;
    free(p);
}

static void step(nb_ctx *ctx, nb_tensor **p, const float *xdata, const int64_t *ydata)
{
    nb_arena_reset(ctx);
    nb_tensor *x = nb_from_data(ctx, NB_F32, NB_SHAPE(64, 784), xdata);
    nb_tensor *y = nb_from_data(ctx, NB_I64, NB_SHAPE(64), ydata);
    nb_tensor *h = nb_dropout(ctx, nb_relu(ctx, nb_add(ctx, nb_matmul(ctx, x, p[0]), p[1])), 0.2, true);
    nb_tensor *z = nb_add(ctx, nb_matmul(ctx, h, p[2]), p[3]);
    nb_tensor *l = nb_cross_entropy(ctx, z, y, NULL);
    assert_non_null(l);
    assert_int_equal(nb_backward(ctx, l), NB_OK);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(nb_axpy(ctx, p[i], -0.01, p[i]->grad), NB_OK);
        nb_zero_grad(p[i]);
    }
}

static void test_steady_state_step_allocates_nothing(void **state)
{
    (void)state;
    nb_ctx_opts o = nb_ctx_opts_default();
    o.allocator.alloc = hook_alloc;
    o.allocator.free = hook_free;
    o.num_threads = 2;
    o.arena_initial_bytes = 4096; /* the first step must grow the arena */
    nb_ctx *ctx = nb_ctx_new(&o);
    assert_non_null(ctx);
    nb_tensor *p[4] = {nb_param(ctx, NB_F32, NB_SHAPE(784, 256)), nb_param(ctx, NB_F32, NB_SHAPE(256)),
                       nb_param(ctx, NB_F32, NB_SHAPE(256, 10)), nb_param(ctx, NB_F32, NB_SHAPE(10))};
    nb_fill_normal(ctx, p[0], 0, 0.05);
    nb_fill_normal(ctx, p[2], 0, 0.05);
    float *xdata = calloc(64 * 784, sizeof(float));
    int64_t ydata[64];
    for (int i = 0; i < 64 * 784; i++)
        xdata[i] = (float)((i * 7919) % 255) / 255.0f;
    for (int i = 0; i < 64; i++)
        ydata[i] = i % 10;

    for (int s = 0; s < 3; s++) /* warm-up: the arena and the grads settle */
        step(ctx, p, xdata, ydata);
    long hook_before = hook_calls;
    atomic_store(&heap_calls, 0);
    atomic_store(&counting, 1);
    for (int s = 0; s < 10; s++)
        step(ctx, p, xdata, ydata);
    atomic_store(&counting, 0);
    printf("over 10 steps: %ld allocations through the hook, %ld malloc-family calls\n",
           hook_calls - hook_before, (long)atomic_load(&heap_calls));
    assert_int_equal(hook_calls - hook_before, 0);
#ifndef NB_NO_MALLOC_HOOK
    assert_int_equal(atomic_load(&heap_calls), 0);
#endif
    free(xdata);
    nb_ctx_free(ctx);
}

/* The same for a convolutional step: conv (im2col workspaces), batch norm
 * (running statistics), max-pool (argmax), residual add, global pooling. */
static void cnn_step(nb_ctx *ctx, nb_module *m, nb_optim *opt, const float *xdata, const int64_t *ydata)
{
    nb_arena_reset(ctx);
    nb_tensor *x = nb_from_data(ctx, NB_F32, NB_SHAPE(16, 1, 12, 12), xdata);
    nb_tensor *y = nb_from_data(ctx, NB_I64, NB_SHAPE(16), ydata);
    nb_tensor *l = nb_cross_entropy(ctx, nb_module_forward(ctx, m, x), y, NULL);
    assert_non_null(l);
    assert_int_equal(nb_backward(ctx, l), NB_OK);
    assert_int_equal(nb_optim_step(ctx, opt), NB_OK);
    nb_optim_zero_grad(opt);
}

static void test_cnn_step_allocates_nothing(void **state)
{
    (void)state;
    nb_ctx_opts o = nb_ctx_opts_default();
    o.allocator.alloc = hook_alloc;
    o.allocator.free = hook_free;
    o.num_threads = 2;
    nb_ctx *ctx = nb_ctx_new(&o);
    nb_conv_opts co = nb_conv_opts_default();
    co.padding[0] = co.padding[1] = 1;
    nb_pool_opts po = nb_pool_opts_default(2, 2);
    nb_module *m = nb_sequential(ctx, NULL);
    nb_sequential_add(ctx, m, nb_conv2d_layer(ctx, "conv1", 1, 8, 3, 3, &co, false));
    nb_sequential_add(ctx, m, nb_batch_norm_layer(ctx, "bn1", 8, 0.1, 1e-5, true));
    nb_sequential_add(ctx, m, nb_activation(ctx, NULL, NB_ACT_RELU, 0));
    nb_sequential_add(ctx, m, nb_max_pool_layer(ctx, NULL, &po));
    nb_sequential_add(ctx, m, nb_basic_block(ctx, "block1", 8, 16, 2));
    nb_sequential_add(ctx, m, nb_global_avg_pool_layer(ctx, NULL));
    nb_sequential_add(ctx, m, nb_linear(ctx, "fc", 16, 10, true));
    nb_optim_opts oo = nb_optim_opts_default(NB_OPT_ADAM);
    nb_optim *opt = nb_optim_new(ctx, &oo);
    assert_int_equal(nb_optim_add_module(ctx, opt, m, false), NB_OK);
    float xdata[16 * 144];
    int64_t ydata[16];
    for (int i = 0; i < 16 * 144; i++)
        xdata[i] = (float)((i * 7919) % 255) / 255.0f;
    for (int i = 0; i < 16; i++)
        ydata[i] = i % 10;
    for (int s = 0; s < 3; s++)
        cnn_step(ctx, m, opt, xdata, ydata);
    long hook_before = hook_calls;
    atomic_store(&heap_calls, 0);
    atomic_store(&counting, 1);
    for (int s = 0; s < 10; s++)
        cnn_step(ctx, m, opt, xdata, ydata);
    atomic_store(&counting, 0);
    printf("cnn, over 10 steps: %ld allocations through the hook, %ld malloc-family calls\n",
           hook_calls - hook_before, (long)atomic_load(&heap_calls));
    assert_int_equal(hook_calls - hook_before, 0);
#ifndef NB_NO_MALLOC_HOOK
    assert_int_equal(atomic_load(&heap_calls), 0);
#endif
    nb_optim_free(ctx, opt);
    nb_module_free(ctx, m);
    nb_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_steady_state_step_allocates_nothing),
        cmocka_unit_test(test_cnn_step_allocates_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL) ? 1 : 0;
}
