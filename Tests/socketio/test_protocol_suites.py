"""Ports of the official compliance suites, socketio/engine.io-protocol (test-suite/test-suite.js)
and socketio/socket.io-protocol (test-suite/test-suite.js), against our /socket.io/.

Case ids (H1, M4, B1, S5, …) are those of /work/notes/socketio-protocol.md section 4.
Adjusted to our semantics (SPEC section 8, docs/PROTOCOL.md):
- pingInterval = pingTimeout = heartbeat_seconds * 1000 = 1000 ms (the suites use 300/200),
  maxPayload = limits.message_bytes = 1000000 (the `suite_server` fixture).
- No echo handlers: where the suites expect an echo (engine.io M1-M3, M6-M7, U1-U3's
  `4hello`; socket.io E1-E4 and the `auth` event of S1-S4) we assert our meaning instead: a
  text message `4…` is a Socket.IO packet, emitted events publish and are acknowledged with
  the position, binary attachments are acknowledged with a bad_request error.
- Only the namespace "/" exists: S3/S4 (custom namespace) get CONNECT_ERROR "Invalid
  namespace" as S5 does.
"""

from __future__ import annotations

import json
import re
import time

import pytest
import requests
import websocket

from sio_support import RS, unique

INTERVAL = 1.0  # heartbeat_seconds
OPEN_KEYS = ["sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"]


def ack_args(frame: str, ack_id: int):
    """The arguments of an ACK `43<id>[…]`."""
    prefix = f"43{ack_id}"
    assert isinstance(frame, str) and frame.startswith(prefix + "["), frame
    return json.loads(frame[len(prefix):])


def check_open(body: str, upgrades: list[str]) -> dict:
    assert body.startswith("0"), body
    packet = json.loads(body[1:])
    assert list(packet) == OPEN_KEYS, packet  # exactly these keys, in Engine.IO's order
    assert isinstance(packet["sid"], str) and re.fullmatch(r"[A-Za-z0-9_-]{20}", packet["sid"]), packet
    assert packet["upgrades"] == upgrades
    assert packet["pingInterval"] == 1000
    assert packet["pingTimeout"] == 1000
    assert packet["maxPayload"] == 1000000
    return packet


def engine_error(r: requests.Response, code: int, message: str, status: int = 400):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    assert r.json() == {"code": code, "message": message}, r.text


def refused_ws(suite, query: str) -> int:
    """Opens a WebSocket that the server must refuse; the status it answered."""
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        suite.ws(query=query)
    return refused.value.status_code


# =======================================================================================
# engine.io-protocol


class TestEngineIOHandshake:
    def test_h1_polling_opens_a_session(self, suite):
        r = requests.get(suite.url, params={"EIO": "4", "transport": "polling"}, timeout=5)
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "text/plain; charset=UTF-8"
        assert r.headers.get("Cache-Control") == "no-store"
        check_open(r.text, ["websocket"])

    @pytest.mark.parametrize("params", [{"transport": "polling"}, {"EIO": "abc", "transport": "polling"},
                                        {"EIO": "3", "transport": "polling"}])
    def test_h2_polling_invalid_eio(self, suite, params):
        engine_error(requests.get(suite.url, params=params, timeout=5), 5, "Unsupported protocol version")

    @pytest.mark.parametrize("params", [{"EIO": "4"}, {"EIO": "4", "transport": "abc"}])
    def test_h3_polling_invalid_transport(self, suite, params):
        engine_error(requests.get(suite.url, params=params, timeout=5), 0, "Transport unknown")

    @pytest.mark.parametrize("method", ["POST", "PUT"])
    def test_h4_polling_invalid_method(self, suite, method):
        r = requests.request(method, suite.url, params={"EIO": "4", "transport": "polling"}, timeout=5)
        engine_error(r, 2, "Bad handshake method")

    def test_h5_websocket_opens_a_session(self, suite):
        sock = suite.ws()
        frame = sock.recv()
        assert isinstance(frame, str)
        check_open(frame, [])

    @pytest.mark.parametrize("query", ["transport=websocket", "EIO=abc&transport=websocket"])
    def test_h6_websocket_invalid_eio(self, suite, query):
        assert refused_ws(suite, query) == 400

    @pytest.mark.parametrize("query", ["EIO=4", "EIO=4&transport=abc"])
    def test_h7_websocket_invalid_transport(self, suite, query):
        assert refused_ws(suite, query) == 400

    def test_polling_handshake_on_websocket_without_upgrade(self, suite):
        """transport=websocket on a plain GET: code 3 (TRANSPORT_HANDSHAKE_ERROR)."""
        engine_error(requests.get(suite.url, params={"EIO": "4", "transport": "websocket"}, timeout=5), 3, "Bad request")


class TestEngineIOMessages:
    def test_m1_polling_text_message_is_a_socketio_packet(self, suite):
        sid, _ = suite.handshake()
        r = suite.post(sid, "40")
        assert (r.status_code, r.text) == (200, "ok")
        assert r.headers["Content-Type"].startswith("text/html")
        r = suite.get(sid)
        assert r.status_code == 200 and r.headers["Content-Type"] == "text/plain; charset=UTF-8"
        assert r.text.startswith('40{"sid":"'), r.text
        assert list(json.loads(r.text[2:])) == ["sid"]

    def test_m2_polling_several_packets_in_one_body(self, suite):
        sid, _ = suite.handshake()
        ch = unique("chat:m2-")
        body = RS.join(["40", f'421["subscribe",{{"channel":"{ch}"}}]', f'422["{ch}","one"]', f'423["history",{{"channel":"{ch}"}}]'])
        r = suite.post(sid, body)
        assert (r.status_code, r.text) == (200, "ok")
        packets = suite.poll_until(sid, lambda p: p.startswith("433"))
        packets = [p for p in packets if p != "2"]
        assert packets[0].startswith('40{"sid":'), packets
        subscribed = ack_args(packets[1], 1)[0]
        assert subscribed["channel"] == ch and subscribed["offset"] == 0
        epoch = subscribed["epoch"]
        rest = packets[2:]
        # Its own publish comes back as an event; the acks are in the order of the packets.
        assert f'42["{ch}","one"]' in rest
        acks = [p for p in rest if p.startswith("43")]
        assert acks[0] == f'432[{{"epoch":"{epoch}","offset":1}}]'
        assert ack_args(acks[1], 3)[0]["messages"][0]["data"] == "one"

    def test_m3_polling_text_and_binary(self, suite):
        sid = suite.polling_session()
        ch = unique("chat:m3-")
        # Five binary events, each a text packet and its attachment, in one body.
        body = RS.join(f'451-{i}["{ch}",{{"_placeholder":true,"num":0}}]' + RS + "bAQIDBA==" for i in range(1, 6))
        r = suite.post(sid, body)
        assert (r.status_code, r.text) == (200, "ok")
        packets = suite.poll_until(sid, lambda p: p.startswith("435"))
        acks = [p for p in packets if p.startswith("43")]
        assert [ack_args(p, i)[0]["error"]["code"] for i, p in enumerate(acks, 1)] == ["bad_request"] * 5, acks
        assert suite.srv.history(ch)["messages"] == []
        # The session goes on.
        r = suite.post(sid, f'426["{ch}","json"]')
        assert r.status_code == 200
        packets = suite.poll_until(sid, lambda p: p.startswith("436"))
        ack = next(p for p in packets if p.startswith("436"))
        assert ack_args(ack, 6)[0]["offset"] == 1

    def test_m4_polling_invalid_packet(self, suite):
        sid, _ = suite.handshake()
        try:
            r = suite.post(sid, "abc")
            assert r.status_code == 400, (r.status_code, r.text)
        except requests.ConnectionError:
            pass  # an aborted request is allowed by the suite
        engine_error(suite.get(sid), 1, "Session ID unknown")

    def test_m5_polling_duplicate_poll(self, suite):
        sid, _ = suite.handshake()
        first = suite.get_async(sid)
        time.sleep(0.1)
        second = suite.get(sid, t="burst")
        assert second.status_code in (400, 500), (second.status_code, second.text)
        r = first.result()
        assert (r.status_code, r.text) == (200, "1")
        assert suite.get(sid).status_code == 400

    def test_duplicate_post(self, suite):
        """Two POSTs at once end the session (notes 1.5; PROTOCOL.md): a first POST whose body
        is still coming is in flight when the second arrives."""
        import socket as sockets
        sid, _ = suite.handshake()
        raw = sockets.create_connection(("127.0.0.1", suite.srv.port))
        raw.sendall((f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: text/plain\r\nContent-Length: 1\r\n\r\n").encode())
        time.sleep(0.3)
        second = suite.post(sid, "3")
        raw.sendall(b"3")
        raw.close()
        assert second.status_code == 400, (second.status_code, second.text)
        engine_error(suite.get(sid), 1, "Session ID unknown")

    def test_m6_websocket_text_message_is_a_socketio_packet(self, suite):
        sock, _ = suite.ws_session()
        sock.send("40")
        reply = sock.recv_skip_pings()
        assert reply.startswith('40{"sid":"') and list(json.loads(reply[2:])) == ["sid"], reply
        ch = unique("chat:m6-")
        sock.send(f'421["subscribe",{{"channel":"{ch}"}}]')
        assert ack_args(sock.recv_skip_pings(), 1)[0]["channel"] == ch

    def test_m7_websocket_binary_message(self, suite):
        sock, _ = suite.sio_ws()
        ch = unique("chat:m7-")
        for ack_id in range(1, 6):  # several times: the attachment follows its event at once
            sock.send(f'451-{ack_id}["{ch}",{{"_placeholder":true,"num":0}}]')
            sock.send_binary(b"\x01\x02\x03\x04")
            [error] = ack_args(sock.recv_skip_pings(), ack_id)
            assert error["error"]["code"] == "bad_request", error
        assert suite.srv.history(ch)["messages"] == []
        sock.send(f'426["{ch}","json"]')
        assert ack_args(sock.recv_skip_pings(), 6)[0]["offset"] == 1

    def test_m8_websocket_invalid_packet(self, suite):
        sock, _ = suite.ws_session()
        sock.send("abc")
        sock.expect_closed(within=1.0)

    def test_polling_at_most_16_packets_a_response(self, suite):
        """python-engineio reads at most 16 packets a payload: the server sends no more."""
        sid = suite.polling_session()
        ch = unique("chat:16-")
        suite.post(sid, f'421["subscribe",{{"channel":"{ch}"}}]')
        suite.poll_until(sid, lambda p: p.startswith("431"))
        for i in range(40):
            suite.srv.publish(ch, i)
        events, sizes = [], []
        deadline = time.monotonic() + 5
        while len(events) < 40 and time.monotonic() < deadline:
            r = suite.get(sid)
            assert r.status_code == 200, r.text
            packets = r.text.split(RS)
            sizes.append(len(packets))
            events += [json.loads(p[2:])[1] for p in packets if p.startswith("42")]
        assert events == list(range(40))
        assert max(sizes) <= 16 and sizes[0] == 16, sizes


class TestEngineIOHeartbeat:
    def test_b1_polling_ping_pong(self, suite):
        sid, _ = suite.handshake()
        last = time.monotonic()
        for _ in range(3):
            r = suite.get(sid)
            now = time.monotonic()
            assert (r.status_code, r.text) == (200, "2")
            assert now - last <= INTERVAL + 0.6, now - last
            r = suite.post(sid, "3")
            assert (r.status_code, r.text) == (200, "ok")
            last = now

    def test_b2_polling_ping_timeout(self, suite):
        sid, _ = suite.handshake()
        time.sleep(2 * INTERVAL + 0.6)  # pingInterval + pingTimeout, and a margin
        engine_error(suite.get(sid), 1, "Session ID unknown")

    def test_b3_websocket_ping_pong(self, suite):
        sock, _ = suite.ws_session()
        times = [time.monotonic()]
        for _ in range(3):
            assert sock.recv(timeout=INTERVAL + 0.6) == "2"
            times.append(time.monotonic())
            sock.send("3")
        gaps = [b - a for a, b in zip(times[1:], times[2:])]
        assert all(INTERVAL - 0.4 <= g <= INTERVAL + 0.5 for g in gaps), gaps  # one ping an interval

    def test_b4_websocket_ping_timeout(self, suite):
        sock, _ = suite.ws_session()
        frames = sock.expect_closed(within=2 * INTERVAL + 0.8, pong=False)
        assert frames == ["2"], frames

    def test_ping_from_client_ends_the_session(self, suite):
        """Engine.IO v4: only the server pings ("invalid heartbeat direction")."""
        sock, _ = suite.ws_session()
        sock.send("2")
        sock.expect_closed(within=1.0)


class TestEngineIOClose:
    def test_c1_polling_forceful_close(self, suite):
        sid, _ = suite.handshake()
        pending = suite.get_async(sid)
        time.sleep(0.1)
        r = suite.post(sid, "1")
        assert (r.status_code, r.text) == (200, "ok")
        r = pending.result()
        assert (r.status_code, r.text) == (200, "6")
        engine_error(suite.get(sid), 1, "Session ID unknown")

    def test_c2_websocket_forceful_close(self, suite):
        sock, _ = suite.ws_session()
        sock.send("1")
        sock.expect_closed(within=1.0)


class TestEngineIOUpgrade:
    def test_u1_upgrade(self, suite):
        sid, _ = suite.handshake()
        pending = suite.get_async(sid)
        time.sleep(0.1)
        sock = suite.ws(sid)
        sock.send("2probe")
        assert sock.recv() == "3probe"
        r = pending.result()
        assert (r.status_code, r.text) == (200, "6")
        sock.send("5")
        sock.send("40")
        reply = sock.recv_skip_pings()
        assert reply.startswith('40{"sid":"') and list(json.loads(reply[2:])) == ["sid"], reply

    def test_u2_http_refused_after_upgrade(self, suite):
        sid, _ = suite.handshake()
        sock = suite.ws(sid)
        sock.send("2probe")
        sock.send("5")
        assert sock.recv() == "3probe"
        time.sleep(0.1)
        engine_error(suite.get(sid), 3, "Bad request")
        engine_error(suite.post(sid, "40"), 3, "Bad request")
        sock.send("40")
        assert sock.recv_skip_pings().startswith('40{"sid":"')

    def test_u3_second_websocket_refused_after_upgrade(self, suite):
        sid, _ = suite.handshake()
        sock = suite.ws(sid)
        sock.send("2probe")
        sock.send("5")
        assert sock.recv() == "3probe"
        time.sleep(0.1)
        try:
            second = suite.ws(sid)
        except websocket.WebSocketBadStatusException as e:
            assert e.status_code == 400
        else:
            second.send("2probe")
            frames = second.expect_closed(within=1.0)
            assert "3probe" not in frames, frames
        sock.send("40")
        assert sock.recv_skip_pings().startswith('40{"sid":"')

    def test_packets_waiting_during_upgrade_go_over_the_websocket(self, suite):
        """What is queued for the client while it probes is sent over the WebSocket after `5`."""
        sid = suite.polling_session()
        ch = unique("chat:up-")
        suite.post(sid, f'421["subscribe",{{"channel":"{ch}"}}]')
        suite.poll_until(sid, lambda p: p.startswith("431"))
        sock = suite.ws(sid)
        sock.send("2probe")
        assert sock.recv() == "3probe"
        for i in range(3):
            suite.srv.publish(ch, i)
        sock.send("5")
        got = [sock.recv_skip_pings() for _ in range(3)]
        assert got == [f'42["{ch}",{i}]' for i in range(3)]

    def test_probe_with_anything_else_is_closed(self, suite):
        sid, _ = suite.handshake()
        sock = suite.ws(sid)
        sock.send("4hello")
        sock.expect_closed(within=1.0)
        # The session is still on polling.
        r = suite.post(sid, "40")
        assert (r.status_code, r.text) == (200, "ok")
        assert any(p.startswith('40{"sid":') for p in suite.poll_until(sid, lambda p: p.startswith("40")))


# =======================================================================================
# socket.io-protocol (Engine.IO cases H1-H5, B1-B4, C1-C2, U1-U3 are the classes above,
# which already run on /socket.io/)


class TestSocketIOConnect:
    def test_s1_connect_main_namespace(self, suite):
        sock, _ = suite.ws_session()
        sock.send("40")
        reply = sock.recv_skip_pings()
        assert reply.startswith("40{"), reply
        payload = json.loads(reply[2:])
        assert list(payload) == ["sid"] and isinstance(payload["sid"], str) and payload["sid"]
        # Nothing else is sent (the suite's next frame is its `auth` event; we have none):
        # the next frame answers our next packet.
        sock.send('421["history",{"channel":"chat:s1"}]')
        assert sock.recv_skip_pings().startswith("431[")

    def test_s2_connect_main_namespace_with_payload(self, suite):
        sock, _ = suite.ws_session()
        sock.send('40{"token":"123"}')
        reply = sock.recv_skip_pings()
        assert reply.startswith("40{") and list(json.loads(reply[2:])) == ["sid"], reply

    @pytest.mark.parametrize("packet", ["40/custom,", '40/custom,{"token":"abc"}'])
    def test_s3_s4_custom_namespace_is_invalid(self, suite, packet):
        sock, _ = suite.ws_session()
        sock.send(packet)
        assert sock.recv_skip_pings() == '44/custom,{"message":"Invalid namespace"}'
        # The connection stays: the main namespace connects on it.
        sock.send("40")
        assert sock.recv_skip_pings().startswith('40{"sid":')

    def test_s5_unknown_namespace(self, suite):
        sock, _ = suite.ws_session()
        sock.send("40/random")
        assert sock.recv_skip_pings() == '44/random,{"message":"Invalid namespace"}'

    def test_s5_unknown_namespace_polling(self, suite):
        sid, _ = suite.handshake()
        suite.post(sid, "40/random")
        packets = suite.poll_until(sid, lambda p: p.startswith("44"))
        assert '44/random,{"message":"Invalid namespace"}' in packets, packets

    def test_s6_invalid_handshake(self, suite):
        sock, _ = suite.ws_session()
        sock.send("4abc")
        sock.expect_closed(within=1.0)

    def test_s7_no_handshake(self, suite):
        """Nothing sent (not even pongs): closed (here by the ping timeout)."""
        sock, _ = suite.ws_session()
        sock.expect_closed(within=2 * INTERVAL + 0.8, pong=False)


class TestSocketIODisconnect:
    def test_d1_disconnect_main_namespace(self, suite):
        sock, _ = suite.sio_ws()
        sock.send("41")
        # Nothing in reply, and the connection stays: the next frame is a ping.
        assert sock.recv(timeout=INTERVAL + 0.6) == "2"

    def test_d2_custom_namespace_then_main(self, suite):
        sock, _ = suite.sio_ws()
        assert sock.recv(timeout=INTERVAL + 0.6) == "2"  # no pong: what follows must be quick
        pinged = time.monotonic()
        sock.send("40/custom")
        assert sock.recv(timeout=1) == '44/custom,{"message":"Invalid namespace"}'
        sock.send('42["chat:d2","message to main namespace"]')
        sock.send('421["history",{"channel":"chat:d2"}]')
        [history] = ack_args(sock.recv(timeout=1), 1)
        assert history["messages"][-1]["data"] == "message to main namespace"
        assert time.monotonic() - pinged < 0.5

    def test_events_after_disconnect_end_the_connection(self, suite):
        """After `41` the namespace is left: an EVENT for it is an invalid state."""
        sock, _ = suite.sio_ws()
        sock.send("41")
        sock.send('42["chat:x",1]')
        sock.expect_closed(within=1.0)


class TestSocketIOEvents:
    def test_e1_plain_event_publishes(self, suite):
        sock, _ = suite.sio_ws()
        ch = unique("chat:e1-")
        sock.send(f'42["{ch}",1,"2",{{"3":[true]}}]')  # the first argument is the data
        sock.send(f'421["history",{{"channel":"{ch}"}}]')
        [history] = ack_args(sock.recv_skip_pings(), 1)
        assert [m["data"] for m in history["messages"]] == [1]

    def test_e2_binary_event_is_refused_without_ack(self, suite):
        sock, _ = suite.sio_ws()
        ch = unique("chat:e2-")
        for ack_id in range(1, 4):
            sock.send(f'452-["{ch}",{{"_placeholder":true,"num":0}},{{"_placeholder":true,"num":1}}]')
            sock.send_binary(b"\x01\x02\x03")
            sock.send_binary(b"\x04\x05\x06")
            sock.send(f'42{ack_id}["history",{{"channel":"{ch}"}}]')
            # Nothing for the binary event; the next frame answers the next packet.
            [history] = ack_args(sock.recv_skip_pings(), ack_id)
            assert history["messages"] == []

    def test_e3_event_with_ack(self, suite):
        sock, _ = suite.sio_ws()
        ch = unique("chat:e3-")
        epoch = suite.srv.publish(ch, 0)["epoch"]
        sock.send(f'42456["{ch}",1,"2",{{"3":[false]}}]')
        assert sock.recv_skip_pings() == f'43456[{{"epoch":"{epoch}","offset":2}}]'

    def test_e4_binary_event_with_ack(self, suite):
        sock, _ = suite.sio_ws()
        ch = unique("chat:e4-")
        for ack_id in (789, 790, 791):
            sock.send(f'452-{ack_id}["{ch}",{{"_placeholder":true,"num":0}},{{"_placeholder":true,"num":1}}]')
            sock.send_binary(b"\x01\x02\x03")
            sock.send_binary(b"\x04\x05\x06")
            [reply] = ack_args(sock.recv_skip_pings(), ack_id)
            assert set(reply) == {"error"} and reply["error"]["code"] == "bad_request", reply
            assert reply["error"]["temporary"] is False
        assert suite.srv.history(ch)["messages"] == []

    @pytest.mark.parametrize("case,packet", [
        ("e5-unknown-type", "4abc"),
        ("e6-invalid-payload", "42{}"),
        ("e7-invalid-ack-id", '42abc["message-with-ack",1,"2",{"3":[false]}]'),
        ("reserved-event-name", '42["disconnect"]'),
        ("connect-twice", "40"),
        ("client-connect-error", '44{"message":"x"}'),
        ("disconnect-with-payload", "41{}"),
        ("too-many-attachments", '4511-["chat:x"]'),
        ("text-while-attachments-due", '451-["chat:x",{"_placeholder":true,"num":0}]\n42["chat:x",1]'),
    ])
    def test_invalid_packets_close(self, suite, case, packet):
        sock, _ = suite.sio_ws()
        for p in packet.split("\n"):
            sock.send(p)
        sock.expect_closed(within=1.0)

    def test_event_before_connect_closes(self, suite):
        sock, _ = suite.ws_session()
        sock.send('42["chat:x",1]')
        sock.expect_closed(within=1.0)

    def test_channel_messages_are_events_named_after_the_channel(self, suite):
        sock, _ = suite.sio_ws()
        ch = unique("chat:ev-")
        sock.send(f'421["subscribe",{{"channel":"{ch}"}}]')
        ack_args(sock.recv_skip_pings(), 1)
        suite.srv.publish(ch, {"AAPL": 190.1})
        assert sock.recv_skip_pings() == f'42["{ch}",{{"AAPL":190.1}}]'
