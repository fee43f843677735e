# graph convolution (src/ops/sparse.c, src/nn/gcn.c): CSR construction, spmm
# against dense loops, the normalised adjacency by its formula, errors, 1 vs 4
# threads, float64 gradient checks; the run also writes the two-layer GCN
# cases that parity_gcn.py replays in PyTorch. The op's own gradient check
# and parity are in test_ops / ops_torch_parity.
nabla_test(test_gcn test_gcn.c dump.c)
add_test(NAME gcn COMMAND test_gcn ${CMAKE_CURRENT_BINARY_DIR}/gcn_parity.bin)
set_tests_properties(gcn PROPERTIES FIXTURES_SETUP gcn_parity)
if(NABLA_TORCH_PYTHON)
  add_test(NAME gcn_torch_parity
    COMMAND ${NABLA_TORCH_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/parity_gcn.py
            ${CMAKE_CURRENT_BINARY_DIR}/gcn_parity.bin)
  set_tests_properties(gcn_torch_parity PROPERTIES FIXTURES_REQUIRED gcn_parity LABELS torch)
endif()
# Zachary's karate club, one labelled node per faction: the GCN must beat
# the one-hot MLP baseline (the example exits 1 otherwise)
add_test(NAME example_gcn_karate COMMAND gcn_karate)
set_tests_properties(example_gcn_karate PROPERTIES TIMEOUT 60)
