/* Card payments: Stripe's Payment Element on the card page, and the confirmation page following
   the payment while Stripe confirms it. The server decides whether an order is paid (from
   Stripe's webhook); this script only shows what the server says. */
(function () {
  "use strict";

  function focusMarked() {
    var target = document.querySelector("[data-card-focus]");
    if (target) { target.focus(); }
  }

  function setUpCardForm(form) {
    var error = form.querySelector("[data-card-error]");
    var submit = form.querySelector("[data-card-submit]");
    var progress = form.querySelector("[data-card-progress]");
    var returnUrl = form.getAttribute("data-return-url");
    if (typeof window.Stripe !== "function") {
      error.textContent = form.getAttribute("data-loading-error");
      return;
    }
    var stripe = window.Stripe(form.getAttribute("data-publishable-key"), {
      // A direct charge: the intent lives on the organization's connected account.
      stripeAccount: form.getAttribute("data-stripe-account"),
      locale: form.getAttribute("data-locale") || "auto"
    });
    var elements = stripe.elements({ clientSecret: form.getAttribute("data-client-secret") });
    var paymentElement = elements.create("payment");
    paymentElement.on("ready", function () { submit.disabled = false; });
    paymentElement.on("loaderror", function () {
      error.textContent = form.getAttribute("data-loading-error");
    });
    paymentElement.mount(form.querySelector("[data-payment-element]"));

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (submit.disabled) { return; }
      submit.disabled = true;
      error.textContent = "";
      progress.hidden = false;
      // Stripe.js handles 3-D Secure, then leaves for return_url; only failures come back here.
      stripe.confirmPayment({ elements: elements, confirmParams: { return_url: returnUrl } })
        .then(function (result) {
          var problem = result.error;
          if (problem && problem.type !== "validation_error") {
            // A decline ends this attempt: the return page asks Stripe and offers a new one.
            window.location.assign(returnUrl);
            return;
          }
          progress.hidden = true;
          submit.disabled = false;
          if (problem) { error.textContent = problem.message || ""; }
        });
    });
  }

  function setUpProgress(panel) {
    if (panel.getAttribute("data-card-phase") !== "confirming" || !window.fetch) { return; }
    var message = panel.querySelector("[data-card-message]");
    var url = panel.getAttribute("data-status-url");
    var interval = parseInt(panel.getAttribute("data-poll-interval"), 10) || 2000;
    var duration = parseInt(panel.getAttribute("data-poll-duration"), 10) || 600000;
    var started = Date.now();
    var failures = 0;

    function later() { window.setTimeout(ask, interval); }
    function ask() {
      if (Date.now() - started > duration) {
        message.textContent = panel.getAttribute("data-slow-message");
        return;
      }
      window.fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
        .then(function (response) {
          if (!response.ok) { throw new Error(String(response.status)); }
          return response.json();
        })
        .then(function (status) {
          failures = 0;
          if (status.phase === "confirming") { later(); return; }
          message.textContent = status.message;
          // The page then shows the new state as the server renders it (paid, or the decline
          // with its "Try again" button).
          window.setTimeout(function () { window.location.reload(); }, 1500);
        })
        .catch(function () {
          failures += 1;
          if (failures === 3) { message.textContent = panel.getAttribute("data-offline-message"); }
          later();
        });
    }
    later();
  }

  document.querySelectorAll("[data-card-form]").forEach(setUpCardForm);
  document.querySelectorAll("[data-card-progress-panel]").forEach(setUpProgress);
  focusMarked();
}());
