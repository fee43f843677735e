# normalisation ops and layers (src/ops/norm.c, src/nn/norm_layers.c): errors,
# running statistics, layers, threads; their gradients and PyTorch parity run
# in test_ops like every op
nabla_test(test_norm test_norm.c)
add_test(NAME norm COMMAND test_norm)
