# nabla tune (issue 6): the Gaussian process behind method = bayes (unit
# test of tools/gp.c), the command end to end on a small generated problem
# (grid, random and bayes, halving, best.ini, errors), and the acceptance
# check on Fashion-MNIST (label accuracy): 12 short trials find a config at
# least as good as the default MLP.
nabla_test(test_gp test_gp.c ${PROJECT_SOURCE_DIR}/tools/gp.c)
target_include_directories(test_gp PRIVATE ${PROJECT_SOURCE_DIR}/tools)
add_test(NAME gp COMMAND test_gp)

if(TARGET nabla)
  add_test(NAME tune COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/tune_test.sh $<TARGET_FILE:nabla>)
  set_tests_properties(tune PROPERTIES TIMEOUT 120)
  add_test(NAME accuracy_tune_fashion
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/tune_test.sh $<TARGET_FILE:nabla>
            --fashion ${PROJECT_SOURCE_DIR}/configs/tune_fashion.ini)
  set_tests_properties(accuracy_tune_fashion PROPERTIES LABELS accuracy TIMEOUT 1800
    SKIP_RETURN_CODE 77)
endif()
