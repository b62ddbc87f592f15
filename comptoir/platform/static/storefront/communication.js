/* Communication tab: a live preview of each e-mail template, rendered by the server. */
(function () {
  "use strict";
  var form = document.querySelector("[data-preview-url]");
  if (!form || !window.fetch) { return; }
  var url = form.getAttribute("data-preview-url");
  var csrf = form.querySelector("input[name=csrf_token]");

  function setUp(editor) {
    var subject = editor.querySelector("[data-template-subject]");
    var body = editor.querySelector("[data-template-body]");
    var output = editor.querySelector("[data-template-output]");
    var button = editor.querySelector("[data-template-preview]");
    var timer = null;

    function show(node) {
      output.hidden = false;
      output.replaceChildren(node);
    }
    function preview() {
      var data = new URLSearchParams();
      data.set("kind", editor.getAttribute("data-kind"));
      data.set("locale", editor.getAttribute("data-locale"));
      data.set("subject", subject.value);
      data.set("body", body.value);
      data.set("csrf_token", csrf ? csrf.value : "");
      fetch(url, {
        method: "POST",
        body: data,
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrf ? csrf.value : "" }
      }).then(function (response) {
        return response.json().then(function (json) { return { ok: response.ok, json: json }; });
      }).then(function (result) {
        var wrapper = document.createElement("div");
        if (!result.ok) {
          wrapper.className = "error";
          wrapper.textContent = result.json.error ? result.json.error.message : "?";
          show(wrapper);
          return;
        }
        var title = document.createElement("p");
        var strong = document.createElement("strong");
        strong.textContent = result.json.subject;
        title.appendChild(strong);
        var content = document.createElement("div");
        // The server escaped every value; its HTML has only paragraphs and line breaks.
        content.innerHTML = result.json.html;
        wrapper.appendChild(title);
        wrapper.appendChild(content);
        show(wrapper);
      }).catch(function () {});
    }
    function later() {
      clearTimeout(timer);
      timer = setTimeout(preview, 400);
    }
    subject.addEventListener("input", later);
    body.addEventListener("input", later);
    button.addEventListener("click", preview);
  }
  document.querySelectorAll("[data-template-editor]").forEach(setUp);
})();
