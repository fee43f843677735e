# safetensors (src/io): unit tests, then the PyTorch parity chain:
# safetensors_write_parity (C writes a file) -> safetensors_torch_parity
# (Python checks it, writes its own file from a torch.nn.Linear and runs the
# C reader on it: test_safetensors --read-torch).
nabla_test(test_safetensors test_safetensors.c)
add_test(NAME safetensors COMMAND test_safetensors)
add_test(NAME safetensors_write_parity
  COMMAND test_safetensors --write-parity ${CMAKE_CURRENT_BINARY_DIR}/st_nabla.safetensors)
set_tests_properties(safetensors_write_parity PROPERTIES FIXTURES_SETUP st_nabla)
if(NABLA_TORCH_PYTHON)
  add_test(NAME safetensors_torch_parity
    COMMAND ${NABLA_TORCH_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/parity_safetensors.py
            ${CMAKE_CURRENT_BINARY_DIR}/st_nabla.safetensors $<TARGET_FILE:test_safetensors>
            ${CMAKE_CURRENT_BINARY_DIR})
  set_tests_properties(safetensors_torch_parity PROPERTIES FIXTURES_REQUIRED st_nabla
    LABELS torch)
endif()
