# attention (src/nn/attention.c): float64 gradient checks of nb_attention
# (causal with Tq != Tk, key padding, fully masked rows), MHA names and init,
# positional encodings, bad input; the run also writes the PyTorch parity
# cases that parity_attn.py replays (MultiheadAttention with 1 and 4 heads,
# causal and key padding; nb_attention against its formula)
nabla_test(test_attn test_attn.c dump.c)
add_test(NAME attn COMMAND test_attn ${CMAKE_CURRENT_BINARY_DIR}/attn_parity.bin)
set_tests_properties(attn PROPERTIES FIXTURES_SETUP attn_parity)
if(NABLA_TORCH_PYTHON)
  add_test(NAME attn_torch_parity
    COMMAND ${NABLA_TORCH_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/parity_attn.py
            ${CMAKE_CURRENT_BINARY_DIR}/attn_parity.bin)
  set_tests_properties(attn_torch_parity PROPERTIES FIXTURES_REQUIRED attn_parity LABELS torch)
endif()
