# cmake -DINPUT=file -DOUTPUT=file.c -DSYMBOL=name -P embed_text.cmake
# Writes OUTPUT: `const char SYMBOL[] = {...bytes of INPUT..., 0};` so that a text file kept
# readable in the tree (an OpenAPI document, say) is compiled in as a NUL-terminated string.
file(READ "${INPUT}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x..,){24})" "\\1\n    " bytes "${bytes}")
file(WRITE "${OUTPUT}.tmp"
  "/* generated from ${INPUT} by cmake/embed_text.cmake: edit that file, not this one */\n"
  "const char ${SYMBOL}[] = {\n    ${bytes}0};\n")
file(RENAME "${OUTPUT}.tmp" "${OUTPUT}")
