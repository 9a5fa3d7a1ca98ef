/* FAQ search box: enhances <form data-faq-search> into an as-you-type combobox with
   in-page results. Plain ES2017, no dependencies, no build. See docs/widget.md.
   API text is never parsed as HTML: snippets are split on the literal <mark> tags. */
(function () {
  "use strict";
  var script = document.currentScript;
  var scriptSrc = script && script.src;
  var uid = 0;
  var TEXT = {
    label: "Search the articles", placeholder: "Search", button: "Search",
    searching: "Searching…", error: "Search is unavailable right now. Please try again.",
    empty: "No results for “{q}”.", emptyHint: "Try fewer or different words, or check the spelling.",
    count: "Showing {from}–{to} of {total} results.", answer: "Best answer",
    didYouMean: "Did you mean", related: "Related:", more: "More results",
    suggestions: "{n} suggestions. Use the up and down arrows to choose."
  };
  var ENT = { "&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": "\"", "&#x27;": "'", "&#39;": "'" };

  function node(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = "faq-search__" + cls;
    if (text != null) n.textContent = text;
    return n;
  }
  function fill(s, v) { return s.replace(/\{(\w+)\}/g, function (m, k) { return k in v ? v[k] : m; }); }
  function unescapeText(s) { return s.replace(/&(?:amp|lt|gt|quot|#x27|#39);/g, function (m) { return ENT[m]; }); }

  // The API escapes every character of a snippet and adds only <mark> and </mark>.
  function marked(parent, snippet) {
    var parts = String(snippet || "").split(/(<mark>|<\/mark>)/), inMark = false;
    for (var i = 0; i < parts.length; i++) {
      var p = parts[i];
      if (p === "<mark>") inMark = true;
      else if (p === "</mark>") inMark = false;
      else if (p) {
        var t = document.createTextNode(unescapeText(p));
        if (inMark) { var m = node("mark"); m.appendChild(t); t = m; }
        parent.appendChild(t);
      }
    }
    return parent;
  }

  function ensureCss() {
    if (!scriptSrc || document.querySelector("link[href*='search-box.css']")) return;
    var link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = scriptSrc.replace(/search-box\.js(?=[?#]|$)/, "search-box.css");
    document.head.appendChild(link);
  }

  function enhance(form) {
    if (form.faqSearch) return;
    form.faqSearch = true;
    var d = form.dataset, id = "faq-search-" + (++uid);
    var text = {};
    Object.keys(TEXT).forEach(function (k) { text[k] = d[k] || TEXT[k]; });
    var api = (d.api || (scriptSrc ? new URL(scriptSrc).origin : "")).replace(/\/+$/, "");
    var site = d.site || location.href;
    var delay = +d.delay || 100, timeout = +d.timeout || 8000, limit = +d.limit || 8;
    if (!form.getAttribute("action")) form.action = api + "/search";
    form.method = "get";
    form.classList.add("faq-search");
    form.setAttribute("role", "search");

    var input = form.querySelector("input[name=q]");
    if (!input) {
      var label = node("label", "label", text.label), bar = node("div", "bar");
      input = node("input", "input");
      input.name = "q";
      input.type = "search";
      input.placeholder = text.placeholder;
      label.htmlFor = input.id = id + "-q";
      var button = node("button", "button", text.button);
      button.type = "submit";
      bar.appendChild(input);
      bar.appendChild(button);
      form.appendChild(label);
      form.appendChild(bar);
    }
    if (!input.id) input.id = id + "-q";
    var field = input.parentNode;
    if (!field.classList.contains("faq-search__field")) {
      field = node("span", "field");
      input.parentNode.insertBefore(field, input);
      field.appendChild(input);
    }
    var listbox = node("ul", "listbox");
    listbox.id = id + "-listbox";
    listbox.setAttribute("role", "listbox");
    var lab = form.querySelector("label[for='" + input.id + "']");
    if (lab) { lab.id = lab.id || id + "-label"; listbox.setAttribute("aria-labelledby", lab.id); }
    listbox.hidden = true;
    field.appendChild(listbox);
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("aria-controls", listbox.id);
    input.autocomplete = "off";
    var live = node("p", "sr");  // announces the number of suggestions
    live.setAttribute("aria-live", "polite");
    var status = node("p", "status");
    status.setAttribute("role", "status");
    var results = node("div", "results");
    form.appendChild(live);
    form.appendChild(status);
    form.appendChild(results);

    var items = [], active = -1, seq = 0, timer = null, pending = false, suggestCtrl = null;
    var searchSeq = 0, searchCtrl = null;

    function request(path, params, ctrl) {
      var url = new URL(api + path, location.href);
      Object.keys(params).forEach(function (k) { url.searchParams.set(k, params[k]); });
      var t = setTimeout(function () { ctrl.abort(); }, timeout);
      return fetch(url.href, {
        signal: ctrl.signal, credentials: "omit", referrerPolicy: "no-referrer",
        headers: { Accept: "application/json" }
      }).then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      }).finally(function () { clearTimeout(t); });
    }
    function safeUrl(u) {
      try {
        var url = new URL(u, site);
        return /^https?:$/.test(url.protocol) ? url.href : null;
      } catch (e) { return null; }
    }
    function link(href, label) {
      var a = node("a", null, label), url = safeUrl(href);
      if (url) a.href = url;
      return a;
    }

    // -- suggestions: the WAI-ARIA combobox pattern
    function setActive(i) {
      active = i;
      var opts = listbox.children;
      for (var j = 0; j < opts.length; j++) opts[j].setAttribute("aria-selected", j === i ? "true" : "false");
      if (i >= 0 && opts[i]) {
        input.setAttribute("aria-activedescendant", opts[i].id);
        if (opts[i].scrollIntoView) opts[i].scrollIntoView({ block: "nearest" });
      } else input.removeAttribute("aria-activedescendant");
    }
    function open() {
      if (!items.length || document.activeElement !== input) return close();
      listbox.hidden = false;
      input.setAttribute("aria-expanded", "true");
    }
    function close() {
      listbox.hidden = true;
      input.setAttribute("aria-expanded", "false");
      setActive(-1);
    }
    function render(list, n, q) {
      items = list;
      var frag = document.createDocumentFragment();
      list.forEach(function (s, i) {
        var li = marked(node("li", "option"), s.highlight);
        if (s.alternate) li.appendChild(node("span", "alt", s.alternate));  // the visitors' words it matched
        li.id = id + "-opt-" + i;
        li.setAttribute("role", "option");
        li.addEventListener("mousedown", function (e) { e.preventDefault(); });
        li.addEventListener("click", function () { go(i); });
        frag.appendChild(li);
      });
      listbox.textContent = "";
      listbox.appendChild(frag);
      listbox.setAttribute("data-seq", n);  // a mutation even when the list stays empty
      listbox.setAttribute("data-q", q || "");  // the text it answers (tests wait on it)
      setActive(-1);
      live.textContent = list.length ? fill(text.suggestions, { n: list.length }) : "";
      open();
    }
    function suggest() {
      var q = input.value, n = ++seq;
      if (suggestCtrl) suggestCtrl.abort();
      if (!q.trim()) { suggestCtrl = null; return render([], n); }
      var ctrl = suggestCtrl = new AbortController();
      request("/v1/suggest", { q: q.slice(0, 256), limit: limit }, ctrl).then(function (data) {
        if (n === seq) render(data.suggestions || [], n, q);  // a late answer to older text is dropped
      }, function () { if (n === seq) render([], n); });
    }
    // Debounced with a leading edge: the first keystroke after a pause asks at once, a burst
    // of keystrokes asks again only when it stops for `delay` ms.
    function schedule() {
      if (timer) { clearTimeout(timer); pending = true; } else suggest();
      timer = setTimeout(function () {
        timer = null;
        if (pending) { pending = false; suggest(); }
      }, delay);
    }
    function go(i) {
      var url = items[i] && safeUrl(items[i].url);
      close();
      if (url) location.assign(url);
    }

    input.addEventListener("input", function () {
      if (!input.value.trim()) { clearTimeout(timer); timer = null; pending = false; suggest(); return; }
      schedule();
    });
    input.addEventListener("keydown", function (e) {
      var n = items.length;
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        if (!n) return;
        if (listbox.hidden) { open(); setActive(e.key === "ArrowDown" ? 0 : n - 1); return; }
        setActive(e.key === "ArrowDown" ? (active + 1) % n : (active <= 0 ? n - 1 : active - 1));
      } else if (e.key === "Enter" && !listbox.hidden && active >= 0) {
        e.preventDefault();
        go(active);
      } else if (e.key === "Escape") {
        if (!listbox.hidden) { e.preventDefault(); close(); }
      } else if (e.key === "Tab") close();
    });
    input.addEventListener("focus", function () { if (input.value.trim()) open(); });
    form.addEventListener("focusout", function (e) { if (!form.contains(e.relatedTarget)) close(); });

    // -- full search
    function say(msg) { status.textContent = msg; }
    function search(q, offset) {
      var n = ++searchSeq;
      if (searchCtrl) searchCtrl.abort();
      var ctrl = searchCtrl = new AbortController();
      form.setAttribute("aria-busy", "true");
      if (!offset) { results.textContent = ""; say(text.searching); }
      var answer = offset ? Promise.resolve(null)
        : request("/v1/answer", { q: q }, ctrl).catch(function () { return null; });
      Promise.all([request("/v1/search", { q: q, limit: 10, offset: offset }, ctrl), answer])
        .then(function (r) { if (n === searchSeq) show(q, r[0], r[1], offset); },
          function () { if (n === searchSeq) say(text.error); })
        .finally(function () { if (n === searchSeq) form.removeAttribute("aria-busy"); });
    }
    function show(q, res, ans, offset) {
      var more = results.querySelector(".faq-search__more");
      if (more) more.remove();
      if (!offset) {
        if (res.did_you_mean) {
          var dym = node("p", "dym", text.didYouMean + " "), a = node("a", null, res.did_you_mean);
          a.href = form.action + "?q=" + encodeURIComponent(res.did_you_mean);
          a.addEventListener("click", function (e) {
            e.preventDefault();
            input.value = res.did_you_mean;
            search(res.did_you_mean, 0);
          });
          dym.appendChild(a);
          dym.appendChild(document.createTextNode("?"));
          results.appendChild(dym);
        }
        if (ans && ans.answer) {
          var box = node("section", "answer");
          box.setAttribute("aria-label", text.answer);
          box.appendChild(node("p", "kicker", text.answer));
          box.appendChild(question(ans.answer));
          box.appendChild(marked(node("p", "snippet"), ans.answer.snippet));
          results.appendChild(box);
        }
        if (!res.results.length && !(ans && ans.answer)) {
          var empty = node("div", "empty");
          empty.appendChild(node("p", "empty-title", fill(text.empty, { q: q })));
          empty.appendChild(node("p", null, text.emptyHint));
          results.appendChild(empty);
          return say(fill(text.empty, { q: q }));
        }
      }
      var list = results.querySelector(".faq-search__list");
      if (!list) { list = node("ol", "list"); results.appendChild(list); }
      res.results.forEach(function (item) { list.appendChild(result(item)); });
      var to = offset + res.results.length;
      say(res.results.length ? fill(text.count, { from: 1, to: to, total: res.total }) : "");
      if (to < res.total && to < 1000) {
        var btn = node("button", "more", text.more);
        btn.type = "button";
        btn.addEventListener("click", function () { search(q, to); });
        results.appendChild(btn);
      }
    }
    function question(item) {
      var h = node("h3", "question");
      h.appendChild(link(item.url, item.question));
      return h;
    }
    function result(item) {
      var li = node("li", "result");
      if (item.breadcrumbs && item.breadcrumbs.length) li.appendChild(node("p", "crumbs", item.breadcrumbs.join(" › ")));
      li.appendChild(question(item));
      li.appendChild(marked(node("p", "snippet"), item.snippet));
      if (item.related && item.related.length) {
        var rel = node("p", "related", text.related + " ");
        item.related.forEach(function (r, i) {
          if (i) rel.appendChild(document.createTextNode(", "));
          rel.appendChild(link(r.url, r.title));
        });
        li.appendChild(rel);
      }
      return li;
    }

    form.addEventListener("submit", function (e) {
      var q = input.value.trim();
      e.preventDefault();
      close();
      if (q) search(q, 0);
      else input.focus();
    });
  }

  function init() {
    ensureCss();
    Array.prototype.forEach.call(document.querySelectorAll("form[data-faq-search]"), enhance);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
