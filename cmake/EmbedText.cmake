# Writes OUT, a C header holding the texts of JOB and TOPOLOGY as string constants.
function(embed var path out_var)
  file(READ ${path} hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
  set(${out_var} "static const char ${var}[] = {${hex} 0x00};\n" PARENT_SCOPE)
endfunction()
embed(demo_job_json ${JOB} job_text)
embed(demo_topology_json ${TOPOLOGY} topology_text)
file(WRITE ${OUT} "/* Generated from examples/ by cmake/EmbedText.cmake. */\n${job_text}${topology_text}")
