/* Checkout pages: the signature pad, the payment method's details, the change due.
   Everything also works without this script: a typed name signs, all details stay visible. */
(function () {
  "use strict";

  function setUpPad(pad) {
    var canvas = pad.querySelector("[data-signature-canvas]");
    var value = pad.querySelector("[data-signature-value]");
    var status = pad.querySelector("[data-signature-status]");
    var clear = pad.querySelector("[data-signature-clear]");
    if (!canvas || !value || !canvas.getContext) { return; }
    var context = canvas.getContext("2d");
    var drawing = false;
    var drawn = false;
    context.lineWidth = 2.5;
    context.lineCap = "round";
    context.strokeStyle = "#1b1f24";

    function point(event) {
      var box = canvas.getBoundingClientRect();
      return {
        x: (event.clientX - box.left) * (canvas.width / box.width),
        y: (event.clientY - box.top) * (canvas.height / box.height)
      };
    }
    function start(event) {
      drawing = true;
      canvas.setPointerCapture && canvas.setPointerCapture(event.pointerId);
      var p = point(event);
      context.beginPath();
      context.moveTo(p.x, p.y);
      event.preventDefault();
    }
    function move(event) {
      if (!drawing) { return; }
      var p = point(event);
      context.lineTo(p.x, p.y);
      context.stroke();
      drawn = true;
      event.preventDefault();
    }
    function end() {
      if (!drawing) { return; }
      drawing = false;
      if (drawn) {
        value.value = canvas.toDataURL("image/png");
        if (status) { status.textContent = status.getAttribute("data-done") || "✓"; }
      }
    }
    canvas.addEventListener("pointerdown", start);
    canvas.addEventListener("pointermove", move);
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointerleave", end);
    if (clear) {
      clear.addEventListener("click", function () {
        context.clearRect(0, 0, canvas.width, canvas.height);
        value.value = "";
        drawn = false;
        if (status) { status.textContent = ""; }
      });
    }
    if (value.value && value.value.indexOf("data:image/png;base64,") === 0) {
      var image = new Image();
      image.onload = function () { context.drawImage(image, 0, 0); drawn = true; };
      image.src = value.value;
    }
  }

  function setUpMethods(form) {
    var radios = form.querySelectorAll("input[name=payment_method]");
    var details = form.querySelectorAll("[data-method-details]");
    function update() {
      var chosen = form.querySelector("input[name=payment_method]:checked");
      var name = chosen ? chosen.value : "";
      details.forEach(function (block) {
        block.hidden = block.getAttribute("data-method-details") !== name;
      });
    }
    radios.forEach(function (radio) { radio.addEventListener("change", update); });
    update();
  }

  function parseAmount(text) {
    var cleaned = (text || "").replace(/[\s$\u00a0]/g, "").replace(",", ".");
    if (!/^\d{1,9}(\.\d{1,2})?$/.test(cleaned)) { return null; }
    var parts = cleaned.split(".");
    return parseInt(parts[0], 10) * 100 + parseInt(((parts[1] || "") + "00").slice(0, 2), 10);
  }

  function setUpChange(input) {
    var output = document.querySelector("[data-change-due]");
    var totalCell = document.getElementById("checkout-total");
    if (!output || !totalCell) { return; }
    var total = parseInt(totalCell.getAttribute("data-total"), 10);
    var currency = output.getAttribute("data-currency") || "CAD";
    var locale = (output.getAttribute("data-locale") || "fr") + "-CA";
    var format = new Intl.NumberFormat(locale, { style: "currency", currency: currency });
    var french = locale.indexOf("fr") === 0;
    function update() {
      var tendered = parseAmount(input.value);
      if (tendered === null) { output.textContent = ""; return; }
      if (tendered >= total) {
        output.textContent = (french ? "Monnaie à rendre : " : "Change due: ") + format.format((tendered - total) / 100);
      } else {
        output.textContent = (french ? "Reste à payer : " : "Left to pay: ") + format.format((total - tendered) / 100);
      }
    }
    input.addEventListener("input", update);
    update();
  }

  document.querySelectorAll("[data-signature-pad]").forEach(setUpPad);
  document.querySelectorAll("[data-payment-form]").forEach(setUpMethods);
  document.querySelectorAll("[data-cash-tendered]").forEach(setUpChange);
})();
