# recurrent layers (src/nn/rnn.c): names, init, float64 gradient checks, a
# 500-step LSTM, truncated BPTT, dropout, bad input; the run also writes the
# PyTorch parity cases that parity_rnn.py replays (RNN/LSTM/GRU, 2 layers,
# bidirectional, batch_first, lengths, no bias)
nabla_test(test_rnn test_rnn.c dump.c)
add_test(NAME rnn COMMAND test_rnn ${CMAKE_CURRENT_BINARY_DIR}/rnn_parity.bin)
set_tests_properties(rnn PROPERTIES FIXTURES_SETUP rnn_parity)
if(NABLA_TORCH_PYTHON)
  add_test(NAME rnn_torch_parity
    COMMAND ${NABLA_TORCH_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/parity_rnn.py
            ${CMAKE_CURRENT_BINARY_DIR}/rnn_parity.bin)
  set_tests_properties(rnn_torch_parity PROPERTIES FIXTURES_REQUIRED rnn_parity LABELS torch)
endif()
