// The cart's live countdown. The page already says until when the items are held (it works
// without this script); this file counts down every second, shows the Renew button once fewer
// than 5 minutes remain, and tells screen readers, through a polite live region, when 5 minutes
// and then 1 minute are left. The visible counter itself is not announced: a reader hears two
// calm messages, not one every second.
(function () {
  "use strict";

  var timer = document.querySelector(".cart-timer[data-expires-at]");
  if (!timer) {
    return;
  }
  var display = timer.querySelector("[data-cart-countdown]");
  var region = timer.querySelector("[data-cart-announce]");
  var renew = timer.querySelector("[data-cart-renew]");
  var expiresAt = Date.parse(timer.getAttribute("data-expires-at"));
  var serverNow = Date.parse(timer.getAttribute("data-now"));
  var renewWindow = parseInt(timer.getAttribute("data-renew-window"), 10) * 1000;
  // The server's clock decides; this keeps the countdown right on a device whose clock is off.
  var skew = isNaN(serverNow) ? 0 : Date.now() - serverNow;
  var announced = { five: false, one: false };

  function remaining() {
    return expiresAt - (Date.now() - skew);
  }

  function clock(milliseconds) {
    var total = Math.max(0, Math.ceil(milliseconds / 1000));
    var minutes = Math.floor(total / 60);
    var seconds = total % 60;
    return minutes + ":" + (seconds < 10 ? "0" : "") + seconds;
  }

  function say(message) {
    if (region) {
      // Emptied first so the same words are announced again on a later visit to the page.
      region.textContent = "";
      window.setTimeout(function () { region.textContent = message; }, 50);
    }
  }

  function tick() {
    var left = remaining();
    if (left <= 0) {
      display.textContent = timer.getAttribute("data-text-expired");
      say(timer.getAttribute("data-text-expired"));
      if (renew) {
        renew.hidden = true;
      }
      window.clearInterval(handle);
      // The page then shows what the cart held and what can be added again.
      window.setTimeout(function () { window.location.reload(); }, 4000);
      return;
    }
    display.textContent = timer.getAttribute("data-text-left").replace("{time}", clock(left));
    if (left <= 60 * 1000 && !announced.one) {
      announced.one = true;
      announced.five = true;
      say(timer.getAttribute("data-text-one"));
    } else if (left <= 5 * 60 * 1000 && !announced.five) {
      announced.five = true;
      say(timer.getAttribute("data-text-five"));
    }
    if (renew && renew.hidden && left < renewWindow) {
      renew.hidden = false;
    }
  }

  // A page opened with less than 5 (or 1) minutes left says so once, then counts on.
  var handle = window.setInterval(tick, 1000);
  tick();
}());
