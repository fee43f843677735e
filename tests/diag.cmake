# diagnostics: alarms, diversity, collapse detector (src/diag)
nabla_test(test_diag test_diag.c)
add_test(NAME diag COMMAND test_diag)
