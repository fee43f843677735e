# pooling and resampling: bad input, known answers, layers (src/ops/pool.c, src/nn/pool_layers.c)
nabla_test(test_pool test_pool.c)
add_test(NAME pool COMMAND test_pool)
