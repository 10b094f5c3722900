# Ownership (BOLA) rules, relation data and JSON bodies: the language, the
# bundle section, both evaluators and the generated policy tests.
vakt_test(ownership_test SOURCES ownership_test.cc
          LIBS vakt::compiler nlohmann_json::nlohmann_json)
