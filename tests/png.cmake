# PNG image grids (src/io/png.c)
nabla_test(test_png test_png.c)
add_test(NAME png COMMAND test_png)
