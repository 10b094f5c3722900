# Schema constraints in policies: body checks (bytecode/body_check.h), the
# schema declaration stage (compiler/schemas.h), the language (`schema`,
# `body`), the bundle sections and CHECK_BODY in the verifier, the VM and
# the reference evaluator.
vakt_test(schema_lang_test
          SOURCES ${CMAKE_CURRENT_LIST_DIR}/schema_lang_test.cc
          LIBS vakt::compiler nlohmann_json::nlohmann_json)
