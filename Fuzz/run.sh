#!/usr/bin/env bash
# Fuzzes the parsers of untrusted input with libFuzzer (swiftc -sanitize=fuzzer,address).
#   bash Fuzz/run.sh                 every target, 30 s each
#   bash Fuzz/run.sh json 600        one target, ten minutes
# Each target is built from the plain-Swift sources it needs (the protocol module and the
# codec under test) into .build-fuzz/, starts from Fuzz/seeds/TARGET and its own corpus,
# and fails on the first crash or broken invariant; the input is left in .build-fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${2:-30}
targets=${1:-all}
[ "$targets" = all ] && targets="json command engineio socketio frames head"
out=.build-fuzz
mkdir -p "$out"

sources_for() {
    local target=$1 dir=$out/src-$target
    rm -rf "$dir"; mkdir -p "$dir"
    cp Sources/SwitchboardProtocol/*.swift "$dir/"
    case $target in
        engineio) cp Sources/SwitchboardServer/SocketIO/EngineIOPacket.swift "$dir/" ;;
        socketio) cp Sources/SwitchboardServer/SocketIO/SocketIOPacket.swift "$dir/" ;;
        head) cp Sources/SwitchboardServer/WebSocket/RequestHead.swift "$dir/" ;;
    esac
    # One module: the imports of our own modules go.
    sed -i '/^import Switchboard/d' "$dir"/*.swift
    cp "Fuzz/targets/$target.swift" "$dir/FuzzTarget.swift"
    echo "$dir"
}

for target in $targets; do
    dir=$(sources_for "$target")
    swiftc -sanitize=fuzzer,address -parse-as-library -O -module-name Fuzzed -package-name Fuzzed "$dir"/*.swift -o "$out/fuzz-$target" 2> "$out/build-$target.log" \
        || { cat "$out/build-$target.log"; exit 1; }
    mkdir -p "$out/corpus/$target"
    echo "fuzzing $target for ${seconds}s"
    (cd "$out" && SWIFT_BACKTRACE=enable=no "./fuzz-$target" -max_total_time="$seconds" -timeout=5 -max_len=4096 -print_final_stats=1 \
        "corpus/$target" "../Fuzz/seeds/$target") > "$out/$target.log" 2>&1 \
        || { tail -40 "$out/$target.log"; echo "fuzz $target: FAILED (the input is in $out)"; exit 1; }
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$out/$target.log" | tr '\n' ' '; echo
done
