"""The pages in Public/, in headless Chromium against the real server binary."""

from __future__ import annotations

import time

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import API_KEY, assert_no_console_errors, screenshot

WAIT = 15  # seconds for things that should take well under one


def wait(driver, condition, timeout: float = WAIT, message: str = ""):
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d), message)


def text(driver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text


def chat_messages(driver) -> list[tuple[int, str, str]]:
    """(offset, sender, text) of every message the chat shows, in page order."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#messages .msg')).map(e => "
        "[Number(e.dataset.offset), e.querySelector('.from').textContent, e.querySelector('.text').textContent])"
    )


def send_chat(driver, nick: str, message: str) -> None:
    nick_field = driver.find_element(By.ID, "nick")
    nick_field.clear()
    nick_field.send_keys(nick)
    driver.find_element(By.ID, "text").send_keys(message)
    driver.find_element(By.ID, "send").click()


def open_chat(driver, server):
    driver.get(server.url + "/demo/chat.html")
    wait(driver, lambda d: text(d, "#status") == "connected", message="chat never connected")


def stock_prices(driver) -> dict[str, str]:
    return driver.execute_script(
        "const out = {}; for (const tr of document.querySelectorAll('#quotes tr[data-symbol]')) "
        "out[tr.dataset.symbol] = tr.querySelector('.price').textContent; return out;"
    )


def record_state(driver, client_var: str) -> None:
    driver.execute_script(
        f"window.__states = []; window.{client_var}.on('state', s => window.__states.push(s));"
    )


# ---------------------------------------------------------------------------------------


def test_landing_page_and_module_import(server, browser, console):
    d = browser()
    d.get(server.url + "/")
    for href in ("/demo/chat.html", "/demo/stocks.html", "/admin/", "/openapi.json"):
        assert d.find_elements(By.CSS_SELECTOR, f'a[href="{href}"]'), href
    # The same URL works as an ES module import: it must not throw and defines globalThis.Switchboard.
    d.execute_script(
        "const s = document.createElement('script'); s.type = 'module';"
        "s.textContent = 'import \"/switchboard.js\"; const { Switchboard } = globalThis;"
        " window.__module = typeof Switchboard === \"function\" && typeof Switchboard.SwitchboardError === \"function\";';"
        "document.head.append(s);"
    )
    wait(d, lambda d: d.execute_script("return window.__module === true"), message="module import failed")
    assert_no_console_errors(console, d)


def test_chat_two_windows_see_each_other(server, browser, console):
    a, b = browser(), browser()
    open_chat(a, server)
    open_chat(b, server)
    for d in (a, b):
        wait(d, lambda d: text(d, "#online") == "2", message="presence did not reach 2")

    send_chat(a, "alice", "hello from alice")
    wait(b, lambda d: any(m[1:] == ["alice", "hello from alice"] for m in chat_messages(d)), message="b never saw alice")
    send_chat(b, "bob", "hi alice, bob here")
    wait(a, lambda d: any(m[1:] == ["bob", "hi alice, bob here"] for m in chat_messages(d)), message="a never saw bob")

    # Both show the same messages, each with a time; the member list learnt bob's name.
    for d in (a, b):
        wait(d, lambda d: len(chat_messages(d)) == 2)
        assert [m[1:] for m in chat_messages(d)] == [["alice", "hello from alice"], ["bob", "hi alice, bob here"]]
        assert all(t.text for t in d.find_elements(By.CSS_SELECTOR, "#messages .msg time"))
    wait(a, lambda d: "bob" in text(d, "#members"))

    # A third visitor gets the history; b leaving drops the count.
    b.quit()
    wait(a, lambda d: text(d, "#online") == "1", message="leave was not applied")
    c = browser()
    open_chat(c, server)
    wait(c, lambda d: len(chat_messages(d)) == 2, message="history was not loaded")
    wait(a, lambda d: text(d, "#online") == "2")
    screenshot(a, "chat.png")
    assert_no_console_errors(console, a, c)


def test_chat_shows_last_50_then_live(server, browser, console):
    for i in range(60):
        server.publish("chat:lobby", {"nick": "seed", "text": f"message {i}"})
    d = browser()
    open_chat(d, server)
    wait(d, lambda d: len(chat_messages(d)) == 50)
    shown = chat_messages(d)
    assert [m[2] for m in shown] == [f"message {i}" for i in range(10, 60)]
    server.publish("chat:lobby", {"nick": "rest", "text": "after joining"})
    wait(d, lambda d: chat_messages(d)[-1][2] == "after joining")
    offsets = [m[0] for m in chat_messages(d)]
    assert offsets == list(range(11, 62)), "no gap and no duplicate between history and live"
    assert_no_console_errors(console, d)


def test_ticker_updates_within_a_second_of_a_put(server, browser, console):
    server.put("stocks", "AAPL", {"symbol": "AAPL", "price": 189.5})
    server.put("stocks", "MSFT", {"symbol": "MSFT", "price": 410.25})
    d = browser()
    d.get(server.url + "/demo/stocks.html")
    wait(d, lambda d: stock_prices(d) == {"AAPL": "189.50", "MSFT": "410.25"}, message="snapshot not shown")
    wait(d, lambda d: text(d, "#status") == "connected")

    for price in (190.75, 188.1, 191.0):
        server.put("stocks", "AAPL", {"symbol": "AAPL", "price": price})
        start = time.monotonic()
        wait(d, lambda d: stock_prices(d).get("AAPL") == f"{price:.2f}", timeout=1.0, message=f"{price} not shown within 1 s")
        assert time.monotonic() - start < 1.0
        cls = d.find_element(By.CSS_SELECTOR, 'tr[data-symbol="AAPL"] td.price').get_attribute("class")
        assert "flash-" in cls, cls
    # A sparkline point per price (the history seeds it, the stream extends it).
    points = d.execute_script("return document.querySelector('tr[data-symbol=\"AAPL\"] polyline').getAttribute('points').split(' ').length")
    assert points == 4

    server.put("stocks", "NVDA", {"symbol": "NVDA", "price": 880})
    wait(d, lambda d: stock_prices(d).get("NVDA") == "880.00", timeout=2)
    assert list(stock_prices(d)) == ["AAPL", "MSFT", "NVDA"]
    screenshot(d, "stocks.png")
    status, _ = server.rest("DELETE", "/v1/collections/stocks/MSFT")
    assert status == 204
    wait(d, lambda d: "MSFT" not in stock_prices(d), timeout=2)
    assert_no_console_errors(console, d)


def test_restart_under_open_pages_loses_nothing(server, browser, console):
    server.put("stocks", "AAPL", {"symbol": "AAPL", "price": 100})
    server.put("stocks", "MSFT", {"symbol": "MSFT", "price": 200})
    for i in range(3):
        server.publish("chat:lobby", {"nick": "seed", "text": f"before {i}"})
    chat, stocks = browser(), browser()
    open_chat(chat, server)
    wait(chat, lambda d: len(chat_messages(d)) == 3)
    stocks.get(server.url + "/demo/stocks.html")
    wait(stocks, lambda d: stock_prices(d) == {"AAPL": "100.00", "MSFT": "200.00"})
    wait(stocks, lambda d: text(d, "#status") == "connected")
    record_state(chat, "chatClient")
    record_state(stocks, "stocksClient")

    down = time.time() * 1000
    server.stop()
    # While the server is away the pages keep trying; connection failures are expected.
    wait(chat, lambda d: text(d, "#status") == "reconnecting", timeout=5)
    # A message typed now waits in the client and is published after the reconnect.
    send_chat(chat, "typist", "typed while the server was down")
    server.start()
    # Publish and write at once, before the pages are back: they must catch up from history.
    for i in range(3):
        server.publish("chat:lobby", {"nick": "rest", "text": f"after restart {i}"})
    server.put("stocks", "AAPL", {"symbol": "AAPL", "price": 101.5})
    server.put("stocks", "GOOG", {"symbol": "GOOG", "price": 150})
    server.put("stocks", "MSFT", {"symbol": "MSFT", "price": 199.25})

    wait(chat, lambda d: text(d, "#status") == "connected", timeout=30, message="chat did not reconnect")
    wait(stocks, lambda d: text(d, "#status") == "connected", timeout=30, message="stocks did not reconnect")
    up = time.time() * 1000
    console.allow(r"WebSocket connection to 'ws://[^']+/v1/ws' failed", down - 1000, up + 5000)

    # The chat shows exactly the channel's history, in order, nothing missed or doubled.
    status, history = server.rest("GET", "/v1/channels/chat:lobby/messages?limit=1000")
    assert status == 200
    wait(chat, lambda d: len(chat_messages(d)) == 7, timeout=15, message="chat did not catch up")
    status, history = server.rest("GET", "/v1/channels/chat:lobby/messages?limit=1000")
    expected = [(m["offset"], m["data"]["nick"], m["data"]["text"]) for m in history["messages"]]
    assert [tuple(m) for m in chat_messages(chat)] == expected
    assert ("typist", "typed while the server was down") in [(m[1], m[2]) for m in expected]

    # The ticker shows exactly the collection.
    status, listing = server.rest("GET", "/v1/collections/stocks?limit=1000")
    want = {r["data"]["symbol"]: f"{r['data']['price']:.2f}" for r in listing["items"]}
    assert want == {"AAPL": "101.50", "GOOG": "150.00", "MSFT": "199.25"}
    wait(stocks, lambda d: stock_prices(d) == want, timeout=5, message="ticker did not catch up")

    for d in (chat, stocks):
        states = d.execute_script("return window.__states")
        assert "reconnecting" in states and states[-1] == "connected", states
    # And they stay live.
    server.publish("chat:lobby", {"nick": "rest", "text": "still live"})
    wait(chat, lambda d: chat_messages(d)[-1][2] == "still live", timeout=2)
    server.put("stocks", "AAPL", {"symbol": "AAPL", "price": 102})
    wait(stocks, lambda d: stock_prices(d)["AAPL"] == "102.00", timeout=2)
    assert_no_console_errors(console, chat, stocks)


def test_admin_dashboard(server, browser, console):
    server.put("stocks", "AAPL", {"symbol": "AAPL", "price": 189.5})
    d = browser()
    d.get(server.url + f"/admin/?key={API_KEY}")
    assert not d.find_element(By.ID, "keyform").is_displayed()
    wait(d, lambda d: text(d, "#connections").isdigit() and int(text(d, "#connections")) > 0, message="no connection count")
    assert "key=" not in d.current_url, "the key stays out of the address bar"
    # The channels table polls /v1/channels.
    wait(d, lambda d: "sys:stats" in text(d, "#channels"), timeout=5)
    # The collection browser is live.
    d.find_element(By.ID, "collection-name").send_keys("stocks")
    d.find_element(By.CSS_SELECTOR, "#collection-form button").click()
    wait(d, lambda d: "AAPL" in text(d, "#records"))
    server.put("stocks", "AAPL", {"symbol": "AAPL", "price": 190})
    server.put("stocks", "TSLA", {"symbol": "TSLA", "price": 250})
    wait(d, lambda d: '"price":190' in text(d, '#records tr[data-id="AAPL"]'), timeout=2)
    wait(d, lambda d: "TSLA" in text(d, "#records"), timeout=2)
    assert text(d, '#records tr[data-id="AAPL"] td.version') == "2"
    # Some traffic for the charts: a chat page and a few seconds of messages.
    chat = browser()
    open_chat(chat, server)
    wait(d, lambda d: int(text(d, "#connections")) >= 2, timeout=5, message="the chat's connection was not counted")
    end = time.monotonic() + 3
    i = 0
    while time.monotonic() < end:
        server.publish("chat:lobby", {"nick": "load", "text": f"message {i}"})
        i += 1
        time.sleep(0.02)
    wait(d, lambda d: float(text(d, "#msg-in")) > 0, timeout=3)
    wait(d, lambda d: "chat:lobby" in text(d, "#channels"), timeout=5)
    assert d.execute_script("return document.getElementById('chart-connections').width > 0")
    screenshot(d, "admin.png")
    assert_no_console_errors(console, chat)
    assert_no_console_errors(console, d)


def test_admin_refuses_a_wrong_key(server, browser, console):
    d = browser()
    d.get(server.url + "/admin/")
    wait(d, lambda d: d.find_element(By.ID, "keyform").is_displayed())
    d.find_element(By.ID, "apikey").send_keys("not-the-key-at-all-0000")
    d.find_element(By.CSS_SELECTOR, "#key-form button").click()
    wait(d, lambda d: "refused" in text(d, "#key-error"))
    assert not d.find_element(By.ID, "dashboard").is_displayed()
    # The refused request is logged by the browser as a failed resource load: expected.
    console.allow(r"/v1/channels - Failed to load resource: the server responded with a status of 401", 0, float("inf"))
    d.find_element(By.ID, "apikey").clear()
    d.find_element(By.ID, "apikey").send_keys(API_KEY)
    d.find_element(By.CSS_SELECTOR, "#key-form button").click()
    wait(d, lambda d: d.find_element(By.ID, "dashboard").is_displayed())
    assert d.execute_script("return sessionStorage.getItem('switchboard.apiKey')") == API_KEY
    assert_no_console_errors(console, d)


def test_sse_transport(server, browser, console):
    """The SSE fallback path: receive over /v1/sse, publish and history over REST."""
    d = browser()
    d.get(server.url + "/")
    server.publish("chat:sse", {"n": 0})
    d.execute_script(
        """
        const s = document.createElement('script'); s.src = '/switchboard.js';
        s.onload = () => {
          const client = new Switchboard({ transports: ['sse'], token: arguments[0] });
          window.sse = { client, got: [], other: [], states: [] };
          client.on('state', (st) => window.sse.states.push(st));
          client.subscribe('chat:sse', (data, msg) => window.sse.got.push(msg.offset));
        };
        document.head.append(s);
        """,
        API_KEY,
    )
    wait(d, lambda d: d.execute_script("return !!window.sse && window.sse.client.state === 'connected'"))
    server.publish("chat:sse", {"n": 1})
    wait(d, lambda d: d.execute_script("return window.sse.got.join(',')") == "2")
    # A second channel reopens the stream; what is published meanwhile on the first is not lost.
    d.execute_script(
        "window.sse.client.subscribe('chat:sse2', (data, msg) => window.sse.other.push(msg.offset))"
        ".ready.then(() => { window.sse.ready2 = true; })"
    )
    server.publish("chat:sse", {"n": 2})
    wait(d, lambda d: d.execute_script("return window.sse.ready2 === true"))
    server.publish("chat:sse2", {"n": 0})
    wait(d, lambda d: d.execute_script("return window.sse.got.join(',')") == "2,3")
    wait(d, lambda d: d.execute_script("return window.sse.other.join(',')") == "1")
    # Publish and history go over REST.
    result = d.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.sse.client.publish('chat:sse', {n: 3}).then(p => window.sse.client.history('chat:sse', {limit: 10})"
        ".then(h => done([p.offset, h.messages.length])), e => done(String(e)))"
    )
    assert result == [4, 4]
    wait(d, lambda d: d.execute_script("return window.sse.got.join(',')") == "2,3,4")
    assert_no_console_errors(console, d)


def test_falls_back_to_sse_when_websockets_are_blocked(server, browser, console, tmp_path):
    """Behind a proxy that refuses WebSocket upgrades the client moves to SSE and REST."""
    from conftest import PUBLIC
    from devproxy import DevProxy

    proxy = DevProxy(str(PUBLIC), server.port, block_websocket=True).start()
    try:
        d = browser()
        d.get(f"http://127.0.0.1:{proxy.port}/")
        start = time.time() * 1000
        d.execute_script(
            """
            const s = document.createElement('script'); s.src = '/switchboard.js';
            s.onload = () => {
              const client = new Switchboard({ token: arguments[0], minBackoff: 100 });
              window.fb = { client, got: [] };
              client.subscribe('chat:fallback', (data) => window.fb.got.push(data.n));
            };
            document.head.append(s);
            """,
            API_KEY,
        )
        wait(d, lambda d: d.execute_script("return !!window.fb && window.fb.client.transport === 'sse' && window.fb.client.state === 'connected'"),
             timeout=30, message="no fallback to SSE")
        console.allow(r"WebSocket connection to 'ws://[^']+/v1/ws[^']*' failed", start - 1000, time.time() * 1000 + 1000)
        server.publish("chat:fallback", {"n": 1})
        wait(d, lambda d: d.execute_script("return window.fb.got.join(',')") == "1")
        offset = d.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "window.fb.client.publish('chat:fallback', {n: 2}).then(p => done(p.offset), e => done(String(e)))"
        )
        assert offset == 2
        wait(d, lambda d: d.execute_script("return window.fb.got.join(',')") == "1,2")
        assert_no_console_errors(console, d)
    finally:
        proxy.stop()
