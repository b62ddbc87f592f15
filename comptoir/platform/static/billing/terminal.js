/* The reader page: ask where the payment stands every few seconds and show it. The status line
   is an aria-live region, so screen readers hear "waiting", "approved" or "declined" as it
   changes. Without this script the page still works: "Check again" reloads it. */
(function () {
  "use strict";

  var live = document.querySelector("[data-reader-live]");
  if (!live || live.getAttribute("data-final") === "true") { return; }
  var url = live.getAttribute("data-status-url");
  var interval = parseInt(live.getAttribute("data-interval"), 10) || 1500;
  var message = live.querySelector("[data-reader-message]");
  var balance = document.querySelector("[data-reader-balance]");
  var orderState = document.querySelector("[data-reader-order-state]");
  var check = live.querySelector("[data-reader-check]");
  if (check) { check.hidden = true; }
  var failures = 0;

  function show(when, visible) {
    document.querySelectorAll('[data-when="' + when + '"]').forEach(function (block) {
      block.hidden = !visible;
    });
  }

  function apply(answer) {
    if (message.textContent !== answer.message) { message.textContent = answer.message; }
    message.className = "reader-state reader-state--" + answer.state;
    live.setAttribute("data-state", answer.state);
    if (orderState && answer.order_state_label) { orderState.textContent = answer.order_state_label; }
    if (balance && answer.balance_label) { balance.textContent = answer.balance_label; }
    if (answer.final) {
      live.setAttribute("data-final", "true");
      show("active", false);
      show("approved", answer.state === "approved");
      show("retry", answer.state === "declined" || answer.state === "cancelled");
    }
    return answer.final;
  }

  function poll() {
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.json();
      })
      .then(function (answer) {
        failures = 0;
        if (!apply(answer)) { window.setTimeout(poll, interval); }
      })
      .catch(function () {
        failures += 1;
        if (check) { check.hidden = false; }
        window.setTimeout(poll, Math.min(interval * (failures + 1), 15000));
      });
  }

  window.setTimeout(poll, interval);
})();
