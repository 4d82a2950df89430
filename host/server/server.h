/* llmrt serve: an OpenAI-compatible HTTP server over the engine (host/server/server.c). */
#ifndef LLMRT_SERVER_H
#define LLMRT_SERVER_H

#include <stdint.h>

int cli_serve(int argc, char **argv);

/* The OpenAPI document served at GET /openapi.json, with the model's limits filled in
 * (host/server/server_openapi.c); malloc'd (free it), NULL when out of memory. */
char *srv_openapi_document(int32_t vocab_size);

#endif
