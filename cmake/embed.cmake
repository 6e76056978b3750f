# Write the bytes of IN as a C array named NAME into OUT (no xxd needed).
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" len)
math(EXPR size "${len} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n" body "${body}")
file(WRITE "${OUT}" "/* Generated from ${IN}: do not edit. */\n"
     "const unsigned char ${NAME}[] = {\n${body}\n};\n"
     "const unsigned long ${NAME}_size = ${size};\n")
