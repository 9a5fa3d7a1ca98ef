"""The search box in real Chromium against real gunicorn: suggestions, keyboard use,
results, hostile text, the no-JavaScript page, another origin, accessibility, screenshots."""

from __future__ import annotations

import re

import pytest

from tests.service.conftest import REPO

from .conftest import PAYLOAD

IMG = REPO / "docs" / "img"
ARTICLE_PAGE = "<!DOCTYPE html><html lang='en'><title>Article</title><h1>Article</h1></html>"


def fake_article_pages(page) -> None:
    """The corpus's URLs are pages of the practice's site, not ours: answer them here."""
    page.route(re.compile(r".*/(goals-of-psychotherapy|how-long|online-therapy|can-psychotherapy)[^?]*$"),
               lambda route: route.fulfill(status=200, content_type="text/html", body=ARTICLE_PAGE))


def open_demo(page, live) -> None:
    page.goto(live.base + "/")
    page.wait_for_function("() => document.querySelector('[role=combobox]') !== null")


def options(page) -> list[str]:
    """The options shown once the listbox answers what the box holds now."""
    page.wait_for_function("""() => {
      const box = document.querySelector('[role=combobox]');
      const list = document.getElementById(box.getAttribute('aria-controls'));
      return !list.hidden && list.dataset.q === box.value && list.children.length > 0;
    }""")
    return page.locator("[role=option]").all_inner_texts()


def pwned(page) -> object:
    return page.evaluate("window.__pwned")


def test_typing_a_prefix_offers_options_and_enter_opens_the_highlighted_deep_link(page, live):
    fake_article_pages(page)
    open_demo(page, live)
    box = page.get_by_role("combobox")
    box.press_sequentially("cop", delay=30)
    texts = options(page)
    assert texts[0] == "Coping Skills", texts
    assert box.get_attribute("aria-expanded") == "true"
    listbox_id = box.get_attribute("aria-controls")
    assert page.locator(f"#{listbox_id}").get_attribute("role") == "listbox"
    assert page.locator("[role=option] mark").first.inner_text().lower() == "cop"

    box.press("ArrowDown")
    first = page.locator("[role=option]").first
    assert box.get_attribute("aria-activedescendant") == first.get_attribute("id")
    assert first.get_attribute("aria-selected") == "true"
    with page.expect_navigation():
        box.press("Enter")
    assert page.url == live.base + "/goals-of-psychotherapy/#coping-skills"
    assert page.errors == []


def test_a_suggestion_found_by_an_alternate_phrasing_shows_it_as_text_under_the_question(page, live):
    open_demo(page, live)
    box = page.get_by_role("combobox")
    box.press_sequentially("what does a sh", delay=20)
    assert options(page)[0].startswith("What Is Psychotherapy?")
    assert page.locator("[role=option] .faq-search__alt").first.inner_text() == "what does a shrink do"
    box.fill("")
    box.press_sequentially("panic tri", delay=20)
    assert options(page)[0].startswith("Coping Skills")
    alt = page.locator("[role=option] .faq-search__alt").first
    assert alt.inner_text().startswith("<img src=x")  # shown as the characters typed
    assert page.locator("[role=listbox] img").count() == 0 and page.title() != "pwned"
    assert page.errors == []


def test_arrows_wrap_escape_closes_and_an_empty_box_asks_nothing(page, live):
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/v1/suggest" in r.url else None)
    open_demo(page, live)
    box = page.get_by_role("combobox")
    box.press_sequentially("psycho", delay=30)
    count = len(options(page))
    assert count > 1
    box.press("ArrowUp")  # from nothing: the last option
    last = page.locator("[role=option]").nth(count - 1)
    assert box.get_attribute("aria-activedescendant") == last.get_attribute("id")
    box.press("ArrowDown")  # wraps to the first
    assert box.get_attribute("aria-activedescendant") == page.locator("[role=option]").first.get_attribute("id")
    box.press("Escape")
    assert box.get_attribute("aria-expanded") == "false"
    assert page.locator("[role=listbox]").is_hidden()
    assert box.get_attribute("aria-activedescendant") is None

    before = len(asked)
    box.fill("")
    box.press_sequentially("   ", delay=30)
    page.wait_for_timeout(300)
    assert len(asked) == before
    assert page.errors == []


def test_a_slow_earlier_suggestion_never_overwrites_a_later_one(page, live):
    # The answer for "cop" comes back 400 ms late, after the answer for "copi".
    page.add_init_script("""
      const real = window.fetch;
      window.fetch = (url, opts) => {
        const slow = String(url).includes('/v1/suggest') && /[?&]q=cop(&|$)/.test(String(url));
        const call = real(url, Object.assign({}, opts, {signal: undefined}));
        return slow ? call.then(r => new Promise(ok => setTimeout(() => { window.__late = true; ok(r); }, 400)))
                    : call;
      };
    """)
    open_demo(page, live)
    box = page.get_by_role("combobox")
    box.press_sequentially("cop")
    page.wait_for_timeout(150)  # past the debounce: the next keystroke asks at once
    box.press("i")
    page.wait_for_function("() => window.__late === true")
    page.wait_for_timeout(50)
    texts = page.locator("[role=option]").all_inner_texts()
    assert texts and all(t.lower().startswith("copi") for t in texts), texts
    assert page.errors == []


def test_a_full_search_shows_marked_snippets_breadcrumbs_links_and_the_best_answer(page, live):
    open_demo(page, live)
    box = page.get_by_role("combobox")
    box.fill("coping skills")
    box.press("Enter")
    page.wait_for_selector(".faq-search__result")
    assert page.locator(".faq-search__result mark").count() > 0
    best = page.locator(".faq-search__answer")
    assert best.locator("a").first.get_attribute("href") == live.base + "/goals-of-psychotherapy/#coping-skills"
    first = page.locator(".faq-search__result").first
    assert first.locator(".faq-search__crumbs").inner_text().startswith("Goals of Psychotherapy")
    assert first.locator("h3 a").get_attribute("href").endswith("#coping-skills")
    assert page.get_by_role("status").filter(has_text="results").inner_text().startswith("Showing 1–")
    assert page.errors == []


def test_related_articles_and_did_you_mean_are_offered(page, live):
    open_demo(page, live)
    box = page.get_by_role("combobox")
    box.fill("psychoterapy notes subpoena")
    box.press("Enter")
    page.wait_for_selector(".faq-search__result")
    dym = page.locator(".faq-search__dym a")
    assert dym.inner_text() == "psychotherapy notes subpoena"
    assert page.locator(".faq-search__related a").count() > 0
    dym.click()
    page.wait_for_function("() => document.querySelector('.faq-search__dym') === null")
    assert box.input_value() == "psychotherapy notes subpoena"
    assert page.errors == []


def test_no_results_shows_a_clear_empty_state(page, live):
    open_demo(page, live)
    box = page.get_by_role("combobox")
    box.fill("xylophone zebra")
    box.press("Enter")
    empty = page.locator(".faq-search__empty")
    empty.wait_for()
    assert "No results for “xylophone zebra”" in empty.inner_text()
    assert page.errors == []


def test_api_errors_are_shown_quietly_and_the_page_keeps_working(page, live):
    open_demo(page, live)
    page.route("**/v1/search?*", lambda route: route.fulfill(status=503, body="{}"))
    box = page.get_by_role("combobox")
    box.fill("coping")
    box.press("Enter")
    page.wait_for_function(
        "() => document.querySelector('.faq-search__status').textContent.includes('unavailable')")
    page.unroute("**/v1/search?*")
    page.route("**/v1/suggest?*", lambda route: route.abort())
    box.fill("")
    box.press_sequentially("coping", delay=20)
    page.wait_for_timeout(200)
    assert page.locator("[role=listbox]").is_hidden()
    page.unroute("**/v1/suggest?*")
    box.press("Enter")
    page.wait_for_selector(".faq-search__result")
    assert page.errors == []


def test_hostile_queries_and_corpus_text_never_execute(page, live):
    open_demo(page, live)
    box = page.get_by_role("combobox")
    box.press_sequentially("sleep hyg", delay=20)
    texts = options(page)
    assert any("<script>" in t or "<img" in t for t in texts), texts  # shown as text
    box.fill("sleep hygiene " + PAYLOAD)
    box.press("Enter")
    page.wait_for_selector(".faq-search__result")
    assert "window.__pwned=1" in page.locator(".faq-search__results").inner_text()
    assert page.locator(".faq-search__results img, .faq-search__results script").count() == 0
    page.wait_for_timeout(200)
    assert pwned(page) is None

    page.goto(live.base + "/search?q=" + PAYLOAD.replace("&", "%26").replace("#", "%23") + "+sleep+hygiene")
    assert page.locator("main img, main script").count() == 0
    assert "onerror" in page.locator("main").inner_text()
    assert pwned(page) is None
    page.goto(live.base + "/")  # the hostile article's title in the article list
    assert page.locator("main img").count() == 0 and pwned(page) is None
    assert page.errors == []


def test_keyboard_only_use_with_visible_focus(page, live):
    fake_article_pages(page)
    open_demo(page, live)
    page.keyboard.press("Tab")  # the brand link
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('role')") == "combobox"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", "")
    page.keyboard.type("online therapy")
    page.keyboard.press("Enter")  # no option highlighted: a full search
    page.wait_for_selector(".faq-search__result")
    page.keyboard.press("Tab")  # the Search button
    page.keyboard.press("Tab")  # the first result's link
    focused = page.evaluate("document.activeElement.closest('.faq-search__results') !== null")
    assert focused
    href = page.evaluate("document.activeElement.href")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url == href
    assert page.errors == []


def test_search_works_with_javascript_disabled(browser, live):
    ctx = browser.new_context(java_script_enabled=False)
    try:
        page = ctx.new_page()
        page.goto(live.base + "/")
        page.fill("input[name=q]", "what is psychotherapy")
        page.press("input[name=q]", "Enter")
        page.wait_for_url(re.compile(r"/search\?q=what\+is\+psychotherapy"))
        assert page.locator("meta[name=robots]").get_attribute("content") == "noindex"
        first = page.locator(".faq-search__result").first
        assert first.locator("a").first.get_attribute("href") == "/goals-of-psychotherapy/#what-is-psychotherapy"
        assert first.locator("mark").count() > 0
        page.get_by_role("link", name=re.compile("Next")).click()
        page.wait_for_url(re.compile(r"offset=10"))
        assert page.locator("ol.faq-search__list").get_attribute("start") == "11"
        response = page.goto(live.base + "/search?q=therapy&offset=-3")
        assert response.status == 400 and "does not exist" in page.locator("h1").inner_text()
    finally:
        ctx.close()


def test_the_widget_works_from_another_allowed_origin(page, live, embedder):
    page.goto(embedder + "/")
    box = page.get_by_role("combobox")
    assert box.get_attribute("placeholder") == "Ask anything"
    assert page.get_by_role("combobox", name="Find an article").count() == 1
    assert "Georgia" in page.evaluate("getComputedStyle(document.querySelector('.faq-search__input')).fontFamily")
    box.press_sequentially("cop", delay=30)
    assert options(page)[0] == "Coping Skills"
    box.press("Escape")
    box.fill("coping skills")
    box.press("Enter")
    page.wait_for_selector(".faq-search__result")
    link = page.locator(".faq-search__result h3 a").first.get_attribute("href")
    assert link.startswith("https://practice.example/")
    assert page.errors == []


def axe_serious(page, axe_js) -> list[dict]:
    page.add_script_tag(path=str(axe_js))
    found = page.evaluate("async () => (await axe.run()).violations"
                          ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.length}))")
    return [v for v in found if v["impact"] in ("serious", "critical")]


def test_axe_finds_no_serious_or_critical_violations(browser, live, axe_js):
    ctx = browser.new_context(bypass_csp=True)  # axe is injected inline
    try:
        page = ctx.new_page()
        open_demo(page, live)
        assert axe_serious(page, axe_js) == []
        box = page.get_by_role("combobox")
        box.press_sequentially("psychotherapy", delay=20)
        options(page)
        box.press("ArrowDown")
        assert axe_serious(page, axe_js) == []
        box.press("Escape")
        box.press("Enter")
        page.wait_for_selector(".faq-search__result")
        assert axe_serious(page, axe_js) == []
        page.goto(live.base + "/search?q=coping+skills")
        assert axe_serious(page, axe_js) == []
        page.goto(live.base + "/search?q=xylophone")
        assert axe_serious(page, axe_js) == []
    finally:
        ctx.close()


@pytest.mark.parametrize(("name", "width", "height"), [("desktop", 1280, 800), ("mobile", 360, 740)])
def test_screenshots_with_suggestions_open_fit_the_viewport(browser, clean_live, name, width, height):
    ctx = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)
    try:
        page = ctx.new_page()
        open_demo(page, clean_live)
        box = page.get_by_role("combobox")
        box.press_sequentially("psychothe", delay=20)
        options(page)
        box.press("ArrowDown")
        box.press("ArrowDown")
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        IMG.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(IMG / f"widget-{name}.png"))
    finally:
        ctx.close()
