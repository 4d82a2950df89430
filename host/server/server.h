/* llmrt serve: an OpenAI-compatible HTTP server over the engine (host/server/server.c). */
#ifndef LLMRT_SERVER_H
#define LLMRT_SERVER_H

int cli_serve(int argc, char **argv);

#endif
