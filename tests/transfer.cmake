# Transfer learning and reproducibility (issue: freezing, init_from, the
# manifest): nb_module_freeze, partial loads into a model with another head,
# nb_manifest_json and its copy in checkpoints (test_transfer.c); the C
# example (pretrain on classes 0-4, fine-tune on 500 images of classes 5-9:
# it exits 1 unless fine-tuning beats training from scratch); and the
# command line's [model] init_from and freeze (transfer_cli.sh).
nabla_test(test_transfer ${CMAKE_CURRENT_LIST_DIR}/test_transfer.c)
add_test(NAME transfer COMMAND test_transfer)

# pass = exit status 0 (a PASS_REGULAR_EXPRESSION would make ctest ignore it).
# ~7 s in a Release build on 2 cores; label accuracy, because under ASan at
# -O0 the convolutions take 3 minutes (it ran clean there once, by hand).
add_test(NAME example_transfer COMMAND transfer cnn frozen 500 20)
set_tests_properties(example_transfer PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
  LABELS accuracy)

find_program(NABLA_PYTHON3 python3)
add_test(NAME cli_transfer
  COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/transfer_cli.sh $<TARGET_FILE:nabla> "${NABLA_PYTHON3}")
