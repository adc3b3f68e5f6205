#!/usr/bin/env python3
"""Bytes on the wire and server CPU with permessage-deflate on and off.

Starts the release server twice (pinned to CPU 0), once with `compression: true` and once
with `compression: false`, subscribes N clients (python `websockets`, which offers
permessage-deflate the way browsers do), publishes M messages of a JSON document over REST,
and reports what the server wrote (`wchar` of /proc/PID/io), its CPU time, and that every
subscriber got every message.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install websockets
    swift build -c release --product switchboard
    /tmp/venv/bin/python Benchmarks/scripts/deflate-wire.py [--subscribers 200] [--messages 500]
"""
import argparse, asyncio, json, os, random, shutil, socket, subprocess, tempfile, time
import http.client
import websockets

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def document(size_hint):
    """A list of stock quotes, as a ticker publishes it: about `size_hint` bytes of JSON."""
    rng = random.Random(7)
    stocks = []
    while len(json.dumps(stocks)) < size_hint:
        symbol = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4))
        stocks.append({"symbol": symbol, "name": f"{symbol} Holdings Inc.", "price": round(rng.uniform(10, 900), 2),
                       "change": round(rng.uniform(-5, 5), 2), "volume": rng.randint(1000, 9_000_000), "currency": "USD"})
    return {"stocks": stocks}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_io(pid):
    fields = dict(line.split(": ") for line in open(f"/proc/{pid}/io").read().splitlines())
    return int(fields["wchar"])


def proc_cpu(pid):
    parts = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


async def run(compression, args):
    directory = tempfile.mkdtemp(prefix="switchboard-deflate-")
    config = os.path.join(directory, "config.yaml")
    with open(config, "w") as f:
        f.write(f"compression: {'true' if compression else 'false'}\n")
        f.write("limits: {connections_per_ip: 100000, handshakes_per_second: 100000, body_bytes: 1048576, message_bytes: 1048576}\n")
    port = free_port()
    server = subprocess.Popen(
        ["taskset", "-c", "0", os.path.join(ROOT, ".build/release/switchboard"), "serve", "--port", str(port),
         "--database", f"sqlite:{directory}/db.sqlite", "--config", config],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        body = json.dumps({"data": document(args.size)})
        counts = [0] * args.subscribers
        payload_bytes = [0]
        negotiated = []

        async def subscriber(i, ready):
            async with websockets.connect(f"ws://127.0.0.1:{port}/v1/ws", max_size=None, ping_interval=None) as ws:
                negotiated.append(bool(ws.response.headers.get("Sec-WebSocket-Extensions")))
                await ws.recv()  # welcome
                await ws.send(json.dumps({"op": "subscribe", "id": 1, "channel": "bench"}))
                await ws.recv()  # reply
                ready.set_result(None)
                while counts[i] < args.messages:
                    frame = json.loads(await ws.recv())
                    if frame.get("type") == "message":
                        counts[i] += 1
                        payload_bytes[0] += len(json.dumps(frame["data"]))

        loop = asyncio.get_running_loop()
        readies = [loop.create_future() for _ in range(args.subscribers)]
        tasks = [asyncio.create_task(subscriber(i, readies[i])) for i in range(args.subscribers)]
        await asyncio.gather(*readies)
        wchar0, cpu0 = proc_io(server.pid), proc_cpu(server.pid)

        def publish():
            connection = http.client.HTTPConnection("127.0.0.1", port)
            for _ in range(args.messages):
                connection.request("POST", "/v1/channels/bench/messages", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                assert response.status == 201, response.status
                time.sleep(1 / args.rate)

        await loop.run_in_executor(None, publish)
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)
        wchar1, cpu1 = proc_io(server.pid), proc_cpu(server.pid)
        return {
            "compression": compression,
            "negotiated": all(negotiated),
            "document_bytes": len(json.dumps(json.loads(body)["data"])),
            "delivered": sum(counts),
            "expected": args.subscribers * args.messages,
            "server_bytes_written": wchar1 - wchar0,
            "server_cpu_s": round(cpu1 - cpu0, 3),
        }
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(directory, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--size", type=int, default=2048, help="approximate size of the JSON document")
    args = parser.parse_args()
    results = [asyncio.run(run(c, args)) for c in (False, True)]
    for r in results:
        print(json.dumps(r))
    off, on = results
    print(json.dumps({
        "wire_ratio": round(off["server_bytes_written"] / on["server_bytes_written"], 2),
        "cpu_ratio_on_over_off": round(on["server_cpu_s"] / off["server_cpu_s"], 2) if off["server_cpu_s"] else None,
    }))


if __name__ == "__main__":
    main()
