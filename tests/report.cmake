# nabla report (tools/report*.c): the page and plots/*.svg checked against a
# synthetic run folder and a real training run (report_check.py reads its
# expectations from the CSVs), the errors (FILE:LINE, exit 1), and the page in
# headless Chromium: no console errors, a non-blank 1200x3000 screenshot
# (copied to report_screenshot.png here). Without chromium the Chromium part
# is skipped, unless NABLA_REQUIRE_CHROMIUM=1 (CI): then it fails.
add_test(NAME report COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/report_test.sh $<TARGET_FILE:nabla>
  ${CMAKE_CURRENT_SOURCE_DIR}/report_check.py ${CMAKE_CURRENT_BINARY_DIR})
set_tests_properties(report PROPERTIES LABELS "report;chromium" TIMEOUT 600)
