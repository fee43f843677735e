# diagnostics: alarms, diversity, collapse detector (src/diag)
nabla_test(test_diag test_diag.c)
add_test(NAME diag COMMAND test_diag)

# diagnostics in the training loop: statistics files, alarms, NaN tracing
nabla_test(test_watch test_watch.c)
add_test(NAME watch COMMAND test_watch)

# check, lr-find and train's diagnostics from the command line
add_test(NAME cli_diag COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/diag_cli.sh $<TARGET_FILE:nabla>)
# the LR finder's suggestion trains the default MLP to its accuracy target
add_test(NAME accuracy_lr_find COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/lrfind_accuracy.sh
  $<TARGET_FILE:nabla> ${PROJECT_SOURCE_DIR}/configs/fashion_mlp.ini 0.890)
set_tests_properties(accuracy_lr_find PROPERTIES LABELS accuracy SKIP_RETURN_CODE 77 TIMEOUT 1800)
