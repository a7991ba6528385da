"""The review page's reply flow in headless Chromium, keyboard only, against the feedback
function served in-process (no stack): suggestions in the e-mail's language, edit, send
once."""

import base64
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest

from emulation.processes import free_port
from services import feedback
from services.replies import sending
from tests.support.browser import LOW_CONTRAST_TEXTS, chromium
from tests.support.lambdas import LambdaContext, http_event
from tests.support.review import ARTIFACTS

SCREENSHOT = "/tmp/postwerk-review-reply.png"  # looked at for docs/pipeline.md


class Gateway(BaseHTTPRequestHandler):
    """API Gateway's HTTP API in front of the feedback function, in this process."""

    def forward(self):
        url = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode() if length else None
        headers = {name.lower(): value for name, value in self.headers.items()}
        event = http_event(self.command, url.path, body, dict(parse_qsl(url.query)), headers)
        answer = feedback.handler(event, LambdaContext())
        payload = answer["body"] or ""
        data = base64.b64decode(payload) if answer.get("isBase64Encoded") else payload.encode()
        self.send_response(answer["statusCode"])
        for name, value in answer.get("headers", {}).items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = forward  # http.server's names

    def log_message(self, *args):  # the e-mails stay out of the test's output
        pass


@pytest.fixture
def page(desk, monkeypatch):
    from playwright.sync_api import expect

    with chromium() as browser:
        # No endpoint here: the embeddings a send asks for fail at once, as on AWS
        # (MiniStack's first answer for a service it lacks took 2.5 s, more in CI: the send
        # outwaited 5 s).
        endpoint = f"http://127.0.0.1:{free_port()}"
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", endpoint)
        expect.set_options(timeout=15_000)  # 5 s by default: tight beside a busy CI run
        server = HTTPServer(("127.0.0.1", 0), Gateway)  # one request at a time, as one Lambda
        threading.Thread(target=server.serve_forever, daemon=True).start()
        tab = browser.new_page()
        tab.goto(f"http://127.0.0.1:{server.server_port}/")
        yield tab
    server.shutdown()
    expect.set_options(timeout=5_000)  # Playwright's default again, for the other tests


def test_a_suggested_reply_is_picked_edited_and_sent_once_by_keyboard(page, desk):
    from playwright.sync_api import expect

    page.fill("#reviewer", "Lena")
    page.locator("#reviewer").dispatch_event("change")
    page.select_option("#filter", "all")
    rows = page.locator("#rows tr")
    expect(rows.nth(3)).to_be_visible()
    page.locator("h1").click()  # keyboard focus on the page, not in a field
    for _ in range(4):  # to the German complaint m0, the oldest
        page.keyboard.press("ArrowDown")
    expect(rows.nth(3)).to_have_class("selected")
    expect(page.locator("#detail pre")).to_contain_text(desk[0].body.split("\n\n")[1][:40])
    page.keyboard.press("r")  # asks for the suggestions, then focuses the first
    expect(page.locator("#suggestions button")).to_have_text(["Use: Antwort Beschwerde"])
    expect(page.locator("#suggestions button").first).to_be_focused()
    page.keyboard.press("Enter")
    text = page.locator("#reply-text")
    expect(text).to_be_focused()
    assert text.input_value().startswith(f"Guten Tag {desk[0].sender_name},")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#alert")).to_contain_text("complete {customer_number} first")
    page.keyboard.press("Shift+Tab")  # back to the draft: fill in what the e-mail lacked
    page.keyboard.press("Control+Home")
    for _ in range(3):
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Shift+End")
    page.keyboard.type("Ihre Kundennummer: 12345")
    assert "{" not in text.input_value()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_contain_text("sent.")
    assert page.evaluate(LOW_CONTRAST_TEXTS) == []
    page.screenshot(path=SCREENSHOT, full_page=True)
    page.keyboard.press("Enter")  # a second click
    expect(page.locator("#status")).to_contain_text("already sent")
    [(record, _)] = sending.outbox(ARTIFACTS)
    assert record.sender == "Lena" and record.suggestion.startswith("template:")

    page.locator("h1").click()
    for _ in range(3):  # to the English complaint m9, the newest
        page.keyboard.press("ArrowUp")
    expect(rows.nth(0)).to_have_class("selected")
    expect(page.locator("#detail pre")).to_contain_text(desk[3].body.split("\n\n")[1][:40])
    page.keyboard.press("r")
    expect(page.locator("#suggestions button")).to_have_text(["Use: Complaint reply"])


def test_templates_are_written_and_retired_on_the_page_by_keyboard(page):
    from playwright.sync_api import expect

    page.fill("#reviewer", "Lena")
    page.locator("#reviewer").dispatch_event("change")
    page.locator("h1").click()
    page.keyboard.press("t")
    expect(page.locator("#template-category")).to_be_focused()
    page.keyboard.press("Tab")  # language: de
    page.keyboard.press("Tab")
    page.keyboard.type("Rechnung erklärt")
    page.keyboard.press("Tab")  # retired: no
    page.keyboard.press("Tab")
    page.keyboard.type("0.95")  # answered automatically above 0.95
    page.keyboard.press("Tab")
    page.keyboard.type("{salutation}\n\nIhre Rechnung über {amount} setzt sich so zusammen: {iban}")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#alert")).to_contain_text("unknown placeholder(s) iban")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Control+End")
    for _ in range(len(" {iban}")):
        page.keyboard.press("Backspace")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_contain_text("saved as version 1")
    row = page.locator("#template-rows tr", has_text="Rechnung erklärt")
    expect(row).to_contain_text("live, auto above 0.95")
    assert page.evaluate(LOW_CONTRAST_TEXTS) == []
    page.screenshot(path=SCREENSHOT.replace("reply", "templates"), full_page=True)

    row.locator("button").focus()
    page.keyboard.press("Enter")  # edit: a new version, retired
    expect(page.locator("#template-title")).to_have_value("Rechnung erklärt")
    page.locator("#template-retired").focus()
    page.keyboard.press("Space")
    page.locator("#template-save").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_contain_text("saved as version 2")
    expect(row).to_contain_text("retired")
