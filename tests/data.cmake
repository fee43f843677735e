# Data file readers (src/data): IDX, NPY, CSV.
nabla_test(test_data test_data.c)
add_test(NAME data COMMAND test_data)

# NumPy parity, a chain of three tests sharing one folder:
#   data_npy_write         C writes c_*.npy and c_expected.txt (nb_npy_write)
#   data_npy_numpy_parity  NumPy loads and checks them, then writes py_*.npy
#                          (every dtype, big-endian, versions 2.0 and 3.0, 0-d,
#                          empty, Fortran order, ...) and py_expected.txt
#   data_npy_read_numpy    C reads NumPy's files (nb_npy_read) and checks them
set(NABLA_DATA_NPY_DIR ${CMAKE_CURRENT_BINARY_DIR}/data_npy)
add_test(NAME data_npy_write COMMAND test_data --npy-write ${NABLA_DATA_NPY_DIR})
set_tests_properties(data_npy_write PROPERTIES FIXTURES_SETUP data_npy_c)
if(NABLA_TORCH_PYTHON)
  add_test(NAME data_npy_numpy_parity
    COMMAND ${NABLA_TORCH_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/parity_data.py ${NABLA_DATA_NPY_DIR})
  set_tests_properties(data_npy_numpy_parity PROPERTIES
    FIXTURES_REQUIRED data_npy_c FIXTURES_SETUP data_npy_py LABELS torch)
  add_test(NAME data_npy_read_numpy COMMAND test_data --npy-check ${NABLA_DATA_NPY_DIR})
  set_tests_properties(data_npy_read_numpy PROPERTIES FIXTURES_REQUIRED data_npy_py LABELS torch)
endif()

# byte-level text: reading, windows, sampling (src/data/text.c)
nabla_test(test_text test_text.c)
add_test(NAME text COMMAND test_text)
