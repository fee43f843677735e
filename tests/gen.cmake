# Generative models and surrogate gradients (issue 7): the examples on a short
# schedule, their pictures read back by an independent PNG decoder
# (test_png --check), and the VAE trained from the CLI.
set(GEN_OUT ${CMAKE_CURRENT_BINARY_DIR}/gen_out)
file(MAKE_DIRECTORY ${GEN_OUT}/good ${GEN_OUT}/broken ${GEN_OUT}/vae)

# the VAE's test ELBO improves at every epoch; its grids decode
add_test(NAME example_vae COMMAND vae 3 10000 ${GEN_OUT}/vae)
set_tests_properties(example_vae PROPERTIES SKIP_RETURN_CODE 77
  PASS_REGULAR_EXPRESSION "improved every epoch: yes" FIXTURES_SETUP vae_out)
add_test(NAME example_vae_png COMMAND test_png --check ${GEN_OUT}/vae/vae_samples.png 233 233)
set_tests_properties(example_vae_png PROPERTIES FIXTURES_REQUIRED vae_out)

# the GAN: the collapse alarm stays quiet on the shipped settings and fires
# when the discriminator is 100x too slow for its generator
add_test(NAME example_gan COMMAND gan --epochs 3 --rows 20000 --out ${GEN_OUT}/good)
set_tests_properties(example_gan PROPERTIES SKIP_RETURN_CODE 77
  PASS_REGULAR_EXPRESSION "collapse_alarms=0 " FIXTURES_SETUP gan_out)
add_test(NAME example_gan_collapse
  COMMAND gan --epochs 3 --rows 20000 --d-lr 2e-6 --out ${GEN_OUT}/broken)
set_tests_properties(example_gan_collapse PROPERTIES SKIP_RETURN_CODE 77
  PASS_REGULAR_EXPRESSION "collapse_alarms=[1-9]")
add_test(NAME example_gan_png COMMAND test_png --check ${GEN_OUT}/good/gan_epoch_03.png 233 233)
set_tests_properties(example_gan_png PROPERTIES FIXTURES_REQUIRED gan_out)

# the same model from the command line (configs/fashion_vae.ini, two epochs)
add_test(NAME cli_vae COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/vae_cli.sh $<TARGET_FILE:nabla>
  $<TARGET_FILE:test_png> ${PROJECT_SOURCE_DIR}/configs/fashion_vae.ini)
set_tests_properties(cli_vae PROPERTIES SKIP_RETURN_CODE 77)
