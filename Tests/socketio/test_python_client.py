"""python-socketio 5.x against the real server's /socket.io/ (SPEC section 8, docs/PROTOCOL.md).

Every test runs on the secured server (API key + HS256 secret; see conftest.py), so
anonymous clients meet the namespace policies: "" anonymous without client publish,
chat anonymous with client publish and presence, private for tokens only.
"""

from __future__ import annotations

import json
import threading
import time

import jwt
import pytest
import requests
import socketio
import websocket

from sio_support import API_KEY, JWT_SECRET, LIMITS, RS, SUITE_CONFIG, Closed, EngineIO, Server, mint, unique

MODES = {
    "polling": (["polling"], "polling"),
    "websocket": (["websocket"], "websocket"),
    "upgrade": (None, "websocket"),  # python-engineio starts on polling and upgrades at once
}


def assert_error(reply, code: str):
    """An acknowledgement that is a refusal with `code`."""
    assert isinstance(reply, dict) and set(reply) == {"error"}, reply
    error = reply["error"]
    assert error["code"] == code, reply
    assert isinstance(error["message"], str) and error["message"], reply
    assert error["temporary"] is False, reply


def assert_server_works(server, sio_client, transports=("websocket",)):
    """A well-behaved client connects, subscribes and receives a REST publish."""
    sio = sio_client(transports=list(transports))
    ch = unique("chat:ok-")
    ack = sio.call("subscribe", {"channel": ch}, timeout=5)
    assert ack["channel"] == ch and ack["offset"] == 0, ack
    server.publish(ch, {"still": "working"})
    assert sio.rec.wait(ch) == [{"still": "working"}]


# ---------------------------------------------------------------------------------------
# Transports


@pytest.mark.parametrize("mode", list(MODES))
def test_transport_connects_subscribes_publishes(server, sio_client, mode):
    transports, expected = MODES[mode]
    sio = sio_client(transports=transports)
    assert sio.connected and isinstance(sio.sid, str) and len(sio.sid) >= 16
    assert sio.transport() == expected

    # The configured socketio.channels are joined at connect.
    marker = unique("m-")
    server.publish("data_updated", {"marker": marker})
    assert sio.rec.wait_match("data_updated", lambda d: isinstance(d, dict) and d.get("marker") == marker)

    ch = unique("chat:t-")
    ack = sio.call("subscribe", {"channel": ch}, timeout=5)
    assert set(ack) == {"channel", "epoch", "offset", "recovered"}, ack
    assert ack["channel"] == ch and ack["offset"] == 0 and ack["recovered"] is False
    assert isinstance(ack["epoch"], str) and ack["epoch"] and ":" not in ack["epoch"]

    rest = server.publish(ch, {"n": 1})
    assert rest["epoch"] == ack["epoch"] and rest["offset"] == 1
    published = sio.call(ch, {"text": "hi"}, timeout=5)
    assert published == {"epoch": ack["epoch"], "offset": 2}
    assert sio.rec.wait(ch, 2) == [{"n": 1}, {"text": "hi"}]
    assert sio.transport() == expected


def test_unsubscribe_stops_events(server, sio_client):
    sio = sio_client()
    ch = unique("chat:u-")
    sio.call("subscribe", {"channel": ch})
    server.publish(ch, 1)
    assert sio.rec.wait(ch) == [1]
    assert sio.call("unsubscribe", {"channel": ch}) == {}
    server.publish(ch, 2)
    # A later event on another channel proves the pipe is flushed past the second publish.
    other = unique("chat:u2-")
    sio.call("subscribe", {"channel": other})
    server.publish(other, "after")
    sio.rec.wait(other)
    assert sio.rec.of(ch) == [1]
    # Subscribing twice is a conflict.
    sio.call("subscribe", {"channel": ch})
    assert_error(sio.call("subscribe", {"channel": ch}), "conflict")


# ---------------------------------------------------------------------------------------
# Credentials


def test_token_in_connect_payload(server, sio_client):
    token = mint("alice", channels=["private:alice-*"])
    sio = sio_client(auth={"token": token}, transports=["websocket"])
    ch = unique("private:alice-")
    ack = sio.call("subscribe", {"channel": ch})
    assert ack["channel"] == ch and ack["recovered"] is False, ack
    server.publish(ch, {"secret": 1})
    assert sio.rec.wait(ch) == [{"secret": 1}]
    # The same channel without the token: refused, credentials needed.
    anonymous = sio_client(transports=["websocket"])
    assert_error(anonymous.call("subscribe", {"channel": ch}), "unauthorized")


@pytest.mark.parametrize("mode", ["polling", "websocket", "upgrade"])
def test_token_in_authorization_header(server, sio_client, mode):
    token = mint("alice", channels=["private:alice-*"])
    sio = sio_client(headers={"Authorization": f"Bearer {token}"}, transports=MODES[mode][0])
    assert sio.transport() == MODES[mode][1]
    ch = unique("private:alice-")
    ack = sio.call("subscribe", {"channel": ch})
    assert "error" not in ack and ack["channel"] == ch, ack
    server.publish(ch, "x")
    assert sio.rec.wait(ch) == ["x"]


@pytest.mark.parametrize("mode", ["polling", "websocket"])
def test_token_in_query(server, sio_client, mode):
    token = mint("alice", channels=["private:alice-*"])
    sio = sio_client(url=f"{server.url}?token={token}", transports=MODES[mode][0])
    ch = unique("private:alice-")
    assert "error" not in sio.call("subscribe", {"channel": ch})
    server.publish(ch, "q")
    assert sio.rec.wait(ch) == ["q"]


def test_api_key_header_has_full_rights(server, sio_client):
    sio = sio_client(headers={"X-API-Key": API_KEY})
    news = unique("news-")  # namespace "": no client publish, but the API key may
    reply = sio.call(news, {"from": "server"})
    history = server.history(news)
    assert reply == {"epoch": history["epoch"], "offset": 1}
    assert [m["data"] for m in history["messages"]] == [{"from": "server"}]
    assert "error" not in sio.call("subscribe", {"channel": unique("private:anyone-")})


def test_connect_payload_token_wins_over_header(server, sio_client):
    good = mint("alice", channels=["private:alice-*"])
    sio = sio_client(auth={"token": good}, headers={"Authorization": "Bearer not-a-token"})
    assert "error" not in sio.call("subscribe", {"channel": unique("private:alice-")})

    refused = sio_client(connect=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        refused.connect(server.url, auth={"token": "not-a-token"}, headers={"Authorization": f"Bearer {good}"},
                        wait_timeout=5)
    [error] = refused.rec.of("connect_error")
    assert error["data"] == {"code": "unauthorized"}, error


BAD_TOKENS = {
    "garbage": lambda: "garbage",
    "expired": lambda: mint("alice", ttl=-60),
    "wrong-secret": lambda: mint("alice", secret="another-secret-that-is-long-enough-0123456789"),
    "no-sub": lambda: jwt.encode({"exp": int(time.time()) + 60}, JWT_SECRET, algorithm="HS256"),
}


@pytest.mark.parametrize("where", ["auth", "header-polling", "header-websocket", "query-polling", "query-websocket"])
@pytest.mark.parametrize("kind", list(BAD_TOKENS))
def test_bad_token_is_connect_error(server, sio_client, where, kind):
    """SPEC section 8: a refusal is CONNECT_ERROR {"message","data":{"code":"unauthorized"}}
    (python-socketio: ConnectionError, and connect_error with that payload), wherever the
    credential came from."""
    token = BAD_TOKENS[kind]()
    sio = sio_client(connect=False)
    where, _, transport = where.partition("-")
    args = {"auth": {"token": token}} if where == "auth" else {}
    if transport:
        args["transports"] = [transport]
    url = server.url
    if where == "header":
        args["headers"] = {"Authorization": f"Bearer {token}"}
    elif where == "query":
        url += f"?token={token}"
    with pytest.raises(socketio.exceptions.ConnectionError):
        sio.connect(url, wait_timeout=5, **args)
    assert not sio.connected
    errors = sio.rec.of("connect_error")
    assert len(errors) == 1, sio.rec.events
    [error] = errors
    assert set(error) == {"message", "data"}, error
    assert error["data"] == {"code": "unauthorized"}, error
    assert isinstance(error["message"], str) and error["message"] and token not in error["message"]


# ---------------------------------------------------------------------------------------
# Permissions


def test_forbidden_channel(server, sio_client):
    sio = sio_client(auth={"token": mint("bob", channels=["private:bob-*"])})
    alices = unique("private:alice-")
    assert_error(sio.call("subscribe", {"channel": alices}), "forbidden")
    assert_error(sio.call("history", {"channel": alices}), "forbidden")
    assert_error(sio.call("subscribe", {"channel": "sys:stats"}), "forbidden")
    server.publish(alices, "not for bob")
    # The connection goes on, with what the token grants.
    mine = unique("private:bob-")
    ack = sio.call("subscribe", {"channel": mine})
    assert ack["channel"] == mine, ack
    server.publish(mine, "for bob")
    assert sio.rec.wait(mine) == ["for bob"]
    assert sio.rec.of(alices) == []


def test_forbidden_channel_at_connect(server, sio_client):
    token = mint("bob", channels=["private:bob-*"])
    sio = sio_client(connect=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        sio.connect(server.url, auth={"token": token, "channels": [unique("private:alice-")]}, wait_timeout=5)
    [error] = sio.rec.of("connect_error")
    assert error["data"] == {"code": "forbidden"}, error

    anonymous = sio_client(connect=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        anonymous.connect(f"{server.url}?channels={unique('private:x-')}", wait_timeout=5)
    [error] = anonymous.rec.of("connect_error")
    assert error["data"] == {"code": "unauthorized"}, error


def test_channels_joined_at_connect(server, sio_client):
    by_auth, by_query = unique("chat:a-"), unique("chat:q-")
    sio = sio_client(url=f"{server.url}?channels={by_query}", auth={"channels": [by_auth]})
    server.publish(by_auth, "a")
    server.publish(by_query, "q")
    assert sio.rec.wait(by_auth) == ["a"]
    assert sio.rec.wait(by_query) == ["q"]


# ---------------------------------------------------------------------------------------
# Order of events


@pytest.mark.parametrize("mode", ["polling", "websocket"])
def test_rest_publishes_arrive_in_order(server, sio_client, mode):
    sio = sio_client(transports=MODES[mode][0])
    ch = unique("chat:o-")
    sio.call("subscribe", {"channel": ch})
    n = 30
    offsets = [server.publish(ch, {"i": i})["offset"] for i in range(1, n + 1)]
    assert offsets == list(range(1, n + 1))
    assert sio.rec.wait(ch, n, timeout=10) == [{"i": i} for i in range(1, n + 1)]


@pytest.mark.parametrize("mode", ["polling", "websocket"])
def test_concurrent_publishes_arrive_in_offset_order(server, sio_client, mode):
    """Bursts from several publishers: events come in offset order (over polling, more than
    the 16 packets a python-engineio response may hold)."""
    sio = sio_client(transports=MODES[mode][0])
    ch = unique("chat:c-")
    sio.call("subscribe", {"channel": ch})
    by_offset: dict[int, dict] = {}
    lock = threading.Lock()

    def publisher(k: int):
        s = requests.Session()
        for j in range(15):
            data = {"p": k, "j": j}
            r = s.post(f"{server.url}/v1/channels/{ch}/messages", json={"data": data},
                       headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
            assert r.status_code == 201, r.text
            with lock:
                by_offset[r.json()["offset"]] = data

    threads = [threading.Thread(target=publisher, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(by_offset) == list(range(1, 61))
    events = sio.rec.wait(ch, 60, timeout=10)
    assert events == [by_offset[o] for o in range(1, 61)]
    time.sleep(0.2)
    assert len(sio.rec.of(ch)) == 60  # no duplicates


# ---------------------------------------------------------------------------------------
# Publishing by emit


def test_publish_by_emit(server, sio_client):
    ch = unique("chat:p-")
    a = sio_client(transports=["websocket"])
    b = sio_client(transports=["polling"])
    epoch = a.call("subscribe", {"channel": ch})["epoch"]
    b.call("subscribe", {"channel": ch})
    assert a.call(ch, {"text": "hi"}) == {"epoch": epoch, "offset": 1}
    assert b.call(ch, [1, 2]) == {"epoch": epoch, "offset": 2}
    a.emit(ch, "no ack")  # publishes too, nothing comes back
    expected = [{"text": "hi"}, [1, 2], "no ack"]
    assert a.rec.wait(ch, 3) == expected  # a publisher subscribed gets its own message
    assert b.rec.wait(ch, 3) == expected
    assert [(m["offset"], m["data"]) for m in server.history(ch)["messages"]] == list(zip([1, 2, 3], expected))


def test_publish_refusals(server, sio_client):
    sio = sio_client()
    for reserved in ("collection:things", "sys:stats"):
        assert_error(sio.call(reserved, {"x": 1}), "forbidden")
    news = unique("news-")  # namespace "": anonymous, client_publish false
    assert_error(sio.call(news, {"x": 1}), "forbidden")
    # No anonymous access at all: PROTOCOL.md's rule would make it unauthorized; the server
    # answers forbidden (client_publish is off there too). Either is a refusal.
    refused = sio.call(unique("private:p-"), {"x": 1})
    assert set(refused) == {"error"} and refused["error"]["code"] in ("unauthorized", "forbidden"), refused
    sio.emit(news, {"x": 2})  # without an acknowledgement: refused all the same
    assert "error" not in sio.call(unique("chat:sync-"), "sync")  # the emit above was handled before this
    assert server.history(news)["messages"] == []

    # A token: its publish claim decides; without one, the namespace's client_publish.
    granted = sio_client(auth={"token": mint("carol", publish=[news])})
    assert granted.call(news, "granted")["offset"] == 1
    assert_error(granted.call(unique("chat:not-granted-"), "x"), "forbidden")
    plain = sio_client(auth={"token": mint("dave")})
    assert_error(plain.call(unique("news-"), "x"), "forbidden")
    assert plain.call(unique("chat:open-"), "x")["offset"] == 1


@pytest.mark.parametrize("mode", ["polling", "websocket"])
def test_binary_attachments_refused(server, sio_client, mode):
    sio = sio_client(transports=MODES[mode][0])
    ch = unique("chat:b-")
    for _ in range(5):  # the attachments follow the event at once: no room for a race
        assert_error(sio.call(ch, b"\x01\x02\x03\x04"), "bad_request")
        assert_error(sio.call(ch, {"blob": b"\x00\xff", "more": [b"\x01"]}), "bad_request")
    assert server.history(ch)["messages"] == []
    # The connection goes on.
    assert sio.call(ch, {"json": True})["offset"] == 1


# ---------------------------------------------------------------------------------------
# Presence and history


def test_presence_join_leave(server, sio_client):
    ch = unique("chat:room-")
    alice = sio_client(auth={"token": mint("alice", info={"name": "Alice"})})
    ack = alice.call("subscribe", {"channel": ch, "presence": True})
    assert "error" not in ack, ack

    bob = sio_client(transports=["polling"], auth={"token": mint("bob")})
    bob.call("subscribe", {"channel": ch})
    [join] = alice.rec.wait("join")
    assert set(join) == {"channel", "member"} and join["channel"] == ch, join
    assert set(join["member"]) == {"client", "user", "info"}
    assert join["member"]["user"] == "bob" and join["member"]["info"] is None
    assert isinstance(join["member"]["client"], str) and join["member"]["client"]

    members = alice.call("presence", {"channel": ch})
    assert set(members) == {"members"}, members
    by_user = {m["user"]: m for m in members["members"]}
    assert set(by_user) == {"alice", "bob"}
    assert by_user["alice"]["info"] == {"name": "Alice"}
    assert by_user["bob"] == join["member"]
    status, rest = server.rest("GET", f"/v1/channels/{ch}/presence")
    assert status == 200 and sorted(m["user"] for m in rest["members"]) == ["alice", "bob"]

    assert bob.call("unsubscribe", {"channel": ch}) == {}
    [leave] = alice.rec.wait("leave")
    assert leave == {"channel": ch, "member": join["member"]}

    anonymous = sio_client(transports=["websocket"])
    anonymous.call("subscribe", {"channel": ch})
    joins = alice.rec.wait("join", 2)
    assert joins[1]["member"]["user"] is None and joins[1]["channel"] == ch
    anonymous.disconnect()
    leaves = alice.rec.wait("leave", 2)
    assert leaves[1] == joins[1]
    assert [m["user"] for m in alice.call("presence", {"channel": ch})["members"]] == ["alice"]
    # Never told about itself, and bob (no presence asked) was told nothing.
    assert all(j["member"]["user"] != "alice" for j in alice.rec.of("join"))
    assert bob.rec.of("join") == [] and bob.rec.of("leave") == []


def test_presence_refused_where_off(server, sio_client):
    sio = sio_client()
    news = unique("news-")
    assert_error(sio.call("subscribe", {"channel": news, "presence": True}), "forbidden")
    assert_error(sio.call("presence", {"channel": news}), "forbidden")
    assert "error" not in sio.call("subscribe", {"channel": news})


def test_history(server, sio_client):
    ch = unique("chat:h-")
    epoch = [server.publish(ch, {"i": i}) for i in range(1, 6)][0]["epoch"]
    sio = sio_client()
    h = sio.call("history", {"channel": ch})
    assert h["epoch"] == epoch and h["offset"] == 5
    assert h["messages"][0] == {"channel": ch, "data": {"i": 1}, "epoch": epoch, "offset": 1, "type": "message"}
    assert [m["offset"] for m in h["messages"]] == [1, 2, 3, 4, 5]
    assert h == server.history(ch)

    since = sio.call("history", {"channel": ch, "since": f"{epoch}:2"})
    assert [m["data"] for m in since["messages"]] == [{"i": 3}, {"i": 4}, {"i": 5}]
    assert since["recovered"] is True
    assert since == server.history(ch, since=f"{epoch}:2")
    limited = sio.call("history", {"channel": ch, "since": {"epoch": epoch, "offset": 2}, "limit": 2})
    assert [m["offset"] for m in limited["messages"]] == [3, 4]
    latest = sio.call("history", {"channel": ch, "limit": 2})
    assert [m["offset"] for m in latest["messages"]] == [4, 5]
    other = sio.call("history", {"channel": ch, "since": "another-epoch:2"})
    assert other["recovered"] is False and other["messages"] == []


# ---------------------------------------------------------------------------------------
# Resuming (python-socketio has no connection state recovery: subscribe with since)


@pytest.mark.parametrize("since_form", ["object", "string"])
def test_resume_after_dropped_connection(server, sio_client, since_form):
    ch = unique("chat:r-")
    first = sio_client(transports=["websocket"])
    first.call("subscribe", {"channel": ch})
    for i in range(1, 4):
        server.publish(ch, {"i": i})
    assert first.rec.wait(ch, 3) == [{"i": 1}, {"i": 2}, {"i": 3}]
    epoch = server.history(ch)["epoch"]
    first.eio.disconnect(abort=True)  # the transport drops: no Socket.IO DISCONNECT
    first.rec.wait("disconnect")

    for i in range(4, 7):
        server.publish(ch, {"i": i})

    again = sio_client(transports=["polling"])
    since = {"epoch": epoch, "offset": 3} if since_form == "object" else f"{epoch}:3"
    ack = again.call("subscribe", {"channel": ch, "since": since})
    assert ack == {"channel": ch, "epoch": epoch, "offset": 6, "recovered": True}
    assert again.rec.wait(ch, 3) == [{"i": 4}, {"i": 5}, {"i": 6}]
    server.publish(ch, {"i": 7})
    assert again.rec.wait(ch, 4) == [{"i": 4}, {"i": 5}, {"i": 6}, {"i": 7}]
    time.sleep(0.2)
    assert len(again.rec.of(ch)) == 4


def test_resume_from_another_epoch_is_not_recovered(server, sio_client):
    ch = unique("chat:r2-")
    server.publish(ch, 1)
    server.publish(ch, 2)
    sio = sio_client()
    ack = sio.call("subscribe", {"channel": ch, "since": {"epoch": "not-this-one", "offset": 1}})
    assert ack["recovered"] is False and ack["offset"] == 2, ack
    server.publish(ch, 3)
    assert sio.rec.wait(ch) == [3]  # only what follows the reply's offset
    time.sleep(0.2)
    assert sio.rec.of(ch) == [3]


# ---------------------------------------------------------------------------------------
# Socket.IO and /v1/ws side by side


@pytest.mark.parametrize("mode", ["polling", "upgrade"])
def test_socketio_and_v1ws_see_the_same_messages(server, sio_client, v1ws, mode):
    ch = unique("chat:x-")
    sio = sio_client(transports=MODES[mode][0])
    ws = v1ws()
    reply = ws.command("subscribe", channel=ch)
    assert reply["result"]["offset"] == 0, reply
    ack = sio.call("subscribe", {"channel": ch})
    assert ack["epoch"] == reply["result"]["epoch"] and ack["offset"] == 0

    for i in range(12):
        data = {"i": i}
        if i % 3 == 0:
            server.publish(ch, data)
        elif i % 3 == 1:
            assert "error" not in sio.call(ch, data)
        else:
            assert "result" in ws.command("publish", channel=ch, data=data)
    pushes = ws.messages(ch, 12)
    assert [p["offset"] for p in pushes] == list(range(1, 13))
    assert [p["data"] for p in pushes] == [{"i": i} for i in range(12)]
    assert sio.rec.wait(ch, 12) == [p["data"] for p in pushes]
    history = sio.call("history", {"channel": ch})
    assert [(m["offset"], m["data"]) for m in history["messages"]] == [(p["offset"], p["data"]) for p in pushes]


# ---------------------------------------------------------------------------------------
# Bad input: each ends only the connection that sent it


GARBAGE = ["abc", "4abc", "42{}", '42abc["x"]', '42["chat:x"', "40", "2", "44{}"]


@pytest.mark.parametrize("packet", GARBAGE)
def test_garbage_over_websocket_ends_that_connection(server, sio_client, eio, packet):
    sock, reply = eio.sio_ws()
    assert set(reply) == {"sid"}
    sock.send(packet)
    sock.expect_closed(within=1.0)
    assert_server_works(server, sio_client)


@pytest.mark.parametrize("packet", GARBAGE)
def test_garbage_over_polling_ends_that_session(server, sio_client, eio, packet):
    sid = eio.polling_session()
    r = eio.post(sid, packet)
    assert r.status_code in (200, 400), (r.status_code, r.text)
    r = eio.get(sid)
    assert r.status_code == 400 and r.json() == {"code": 1, "message": "Session ID unknown"}, (r.status_code, r.text)
    assert_server_works(server, sio_client, transports=("polling",))


def test_unknown_sid(server, sio_client, eio):
    for r in (eio.get("nosuchsession1234567"), eio.post("nosuchsession1234567", "40")):
        assert r.status_code == 400, (r.status_code, r.text)
        assert r.headers["Content-Type"].startswith("application/json")
        assert r.text == '{"code":1,"message":"Session ID unknown"}'
    assert_server_works(server, sio_client)


def test_unknown_sid_websocket_is_refused(server, eio):
    """Engine.IO refuses an upgrade for an unknown session with 400 (code 1) and no 101."""
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        eio.ws(query="EIO=4&transport=websocket&sid=nosuchsession1234567")
    assert refused.value.status_code == 400


def test_foreign_origin_is_refused_on_every_transport(server, sio_client, eio):
    """SPEC sections 5 and 8: `/v1/ws`'s origin check. The secured server lists no
    allowed_origins, so only its own origin may open a polling session, a WebSocket, or
    upgrade a session to WebSocket; a refusal is 403 with Engine.IO's code 4."""
    foreign = "http://evil.example"
    r = requests.get(eio.url, params=eio.params(), headers={"Origin": foreign}, timeout=5)
    assert r.status_code == 403, (r.status_code, r.text)
    assert r.json()["code"] == 4 and foreign in r.json()["message"], r.text
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(f"{eio.ws_base}?EIO=4&transport=websocket", origin=foreign, timeout=5)
    assert refused.value.status_code == 403
    # A session opened from the server's own origin cannot be taken over by a foreign page.
    r = requests.get(eio.url, params=eio.params(), headers={"Origin": server.url}, timeout=5)
    assert r.status_code == 200 and r.text.startswith("0{"), (r.status_code, r.text)
    sid = json.loads(r.text[1:])["sid"]
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(f"{eio.ws_base}?EIO=4&transport=websocket&sid={sid}", origin=foreign, timeout=5)
    assert refused.value.status_code == 403
    assert eio.post(sid, "40").status_code == 200  # The session itself goes on.
    assert_server_works(server, sio_client)


def test_handshake_flood_from_one_address_gets_429(tmp_path):
    """SPEC sections 5 and 8: `/v1/ws`'s per-IP handshake rate counts Engine.IO's new
    sessions, polling and WebSocket alike (429, code 4); a session already open keeps polling."""
    srv = Server(tmp_path, dict(SUITE_CONFIG, limits=dict(LIMITS, handshakes_per_second=2)))
    srv.start()
    try:
        e = EngineIO(srv)
        sid, _ = e.handshake()
        statuses = [requests.get(e.url, params=e.params(), timeout=5) for _ in range(10)]
        refused = [r for r in statuses if r.status_code == 429]
        assert refused and all(r.status_code in (200, 429) for r in statuses), [r.status_code for r in statuses]
        assert refused[0].json()["code"] == 4 and "handshakes" in refused[0].json()["message"], refused[0].text
        with pytest.raises(websocket.WebSocketBadStatusException) as flood:
            for _ in range(10):
                e.ws()
        assert flood.value.status_code == 429
        # Requests of the open session are not handshakes.
        assert e.post(sid, "40").status_code == 200
        r = e.get(sid)
        assert r.status_code == 200 and r.text.startswith("40{"), r.text
    finally:
        srv.stop()


def _acks(frames: list) -> dict:
    """{ack id: first argument} of the ACK packets `43<id>[…]` among `frames`."""
    acks = {}
    for frame in frames:
        if isinstance(frame, str) and frame.startswith("43"):
            digits = frame[2:frame.index("[")]
            acks[int(digits)] = json.loads(frame[2 + len(digits):])[0]
    return acks


def test_event_flood_over_websocket_is_refused_through_acks_then_closed(server, eio):
    """SPEC sections 5 and 8: `/v1/ws`'s command rate (100/s, burst 200 here). Each event
    over it is acknowledged with a rate_limited error instead of being run; once another
    burst has been refused in a row, the connection closes with 4129."""
    ch = unique("chat:flood-")
    sock, _ = eio.sio_ws()
    for i in range(1, 301):
        sock.send(f'42{i}["{ch}",{i}]')
    frames = []
    while len(_acks(frames)) < 300:
        frames.append(sock.recv_skip_pings(timeout=5))
    acks = _acks(frames)
    refused = sorted(i for i, a in acks.items() if isinstance(a, dict) and "error" in a)
    published = sorted(i for i, a in acks.items() if i not in refused)
    assert refused and published, acks
    assert all(acks[i]["error"]["code"] == "rate_limited" and acks[i]["error"]["temporary"] is True for i in refused), acks
    assert all(set(acks[i]) == {"epoch", "offset"} for i in published), acks
    # What was acknowledged as published is there, once each and in order; nothing else is
    # (the channel keeps its last 200).
    history = [m["data"] for m in server.history(ch, limit=1000)["messages"]]
    assert history == published[-200:]
    # A longer flood: refusals, then 4129.
    with pytest.raises(Closed):
        for i in range(301, 1001):
            sock.send(f'42{i}["{ch}",{i}]')
        while True:
            sock.recv_skip_pings(timeout=5)
    assert sock.close_code == 4129


def test_event_flood_over_polling_is_refused_through_acks(server, eio):
    """The same over long-polling: a POST of 300 events gets 300 acknowledgements, those
    over the rate rate_limited, and the session goes on."""
    ch = unique("chat:pflood-")
    sid = eio.polling_session()
    body = RS.join(f'42{i}["{ch}",{i}]' for i in range(1, 301))
    r = eio.post(sid, body)
    assert (r.status_code, r.text) == (200, "ok")
    packets = []
    while len(_acks(packets)) < 300:
        packets += eio.poll_until(sid, lambda p: p.startswith("43"))
    acks = _acks(packets)
    refused = sorted(i for i, a in acks.items() if "error" in a)
    assert refused and all(acks[i]["error"]["code"] == "rate_limited" for i in refused), acks
    published = sorted(i for i in acks if i not in refused)
    assert [m["data"] for m in server.history(ch, limit=1000)["messages"]] == published[-200:]
    # Once the rate allows again, the same session publishes.
    time.sleep(1.1)
    assert eio.post(sid, f'42999["{ch}","after"]').status_code == 200
    ack = _acks(eio.poll_until(sid, lambda p: p.startswith("43999")))[999]
    assert set(ack) == {"epoch", "offset"}, ack
    assert server.history(ch, limit=1)["messages"][0]["data"] == "after"


def test_oversize_post(server, sio_client, eio):
    sid = eio.polling_session()
    big = '42["chat:big",' + json.dumps("x" * 70000) + "]"
    r = eio.post(sid, big)
    assert r.status_code == 413, (r.status_code, r.text)
    assert server.history("chat:big")["messages"] == []
    assert_server_works(server, sio_client, transports=("polling",))


def test_oversize_websocket_frame(server, sio_client, eio):
    sock, _ = eio.sio_ws()
    sock.send('42["chat:big",' + json.dumps("x" * 70000) + "]")
    sock.expect_closed(within=1.0)
    assert sock.close_code in (None, 1009), sock.close_code
    assert_server_works(server, sio_client)


@pytest.mark.parametrize("body,content_type", [
    ("40", "application/octet-stream"),
    (b"42[\"chat:x\",\"\xff\xfe\"]", "text/plain"),  # not UTF-8
])
def test_unsupported_post_payload(server, sio_client, eio, body, content_type):
    sid = eio.polling_session()
    r = eio.post(sid, body, headers={"Content-Type": content_type})
    assert r.status_code == 400, (r.status_code, r.text)
    r = eio.get(sid)
    assert r.status_code == 400 and r.json()["code"] == 1
    assert_server_works(server, sio_client, transports=("polling",))


@pytest.mark.parametrize("event,argument", [
    ("subscribe", "chat:x"),
    ("subscribe", None),
    ("subscribe", {}),
    ("subscribe", {"channel": 5}),
    ("subscribe", {"channel": "bad name!"}),
    ("subscribe", {"channel": "chat:x", "since": "no-offset"}),
    ("subscribe", {"channel": "chat:x", "since": {"epoch": 1, "offset": "x"}}),
    ("subscribe", {"channel": "chat:x", "presence": "yes"}),
    ("unsubscribe", [1]),
    ("history", {"channel": "chat:x", "limit": 0}),
    ("history", {"channel": "chat:x", "limit": "ten"}),
    ("presence", {"channel": ["chat:x"]}),
    ("bad name!", {"x": 1}),
])
def test_wrong_arguments_are_bad_request(server, sio_client, event, argument):
    sio = sio_client()
    assert_error(sio.call(event, argument), "bad_request")
    # The same client goes on.
    ch = unique("chat:w-")
    assert sio.call("subscribe", {"channel": ch})["channel"] == ch
    server.publish(ch, "fine")
    assert sio.rec.wait(ch) == ["fine"]


def test_other_clients_unaffected_by_garbage(server, sio_client, eio):
    """A client that is connected while another sends garbage keeps its events."""
    ch = unique("chat:n-")
    good = sio_client(transports=["polling"])
    good.call("subscribe", {"channel": ch})
    for packet in ("abc", "42{}"):
        sock, _ = eio.sio_ws()
        sock.send(packet)
        sid = eio.polling_session()
        eio.post(sid, packet)
    server.publish(ch, "unaffected")
    assert good.rec.wait(ch) == ["unaffected"]
    assert good.connected
