# the embedding op and layer: known answers, padding, errors, threads, training (src/ops/embedding.c, src/nn/embedding.c)
nabla_test(test_embed test_embed.c)
add_test(NAME embed COMMAND test_embed)
