// Design mode: reorder categories and article cards by drag and drop. The arrow buttons next to
// each item are ordinary forms that work without this script and with the keyboard; this file
// adds dragging, then saves the new order with one POST carrying the CSRF token.
(function () {
  "use strict";

  var tokenMeta = document.querySelector('meta[name="csrf-token"]');
  var csrfToken = tokenMeta ? tokenMeta.getAttribute("content") : "";
  var statusRegion = document.getElementById("design-status");

  function announce(message) {
    if (statusRegion) {
      statusRegion.textContent = message;
    }
  }

  function idsOf(list) {
    return Array.prototype.map.call(list.querySelectorAll(":scope > li[data-id]"), function (item) {
      return parseInt(item.getAttribute("data-id"), 10);
    });
  }

  function save(list) {
    var kind = list.getAttribute("data-reorder-kind");
    var body = kind === "categories"
      ? { audience: list.getAttribute("data-audience"), tag_ids: idsOf(list) }
      : { tag_id: parseInt(list.getAttribute("data-tag-id"), 10), article_ids: idsOf(list) };
    return fetch(list.getAttribute("data-reorder-url"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken },
      body: JSON.stringify(body)
    }).then(function (response) {
      if (!response.ok) {
        throw new Error("HTTP " + response.status);
      }
      announce(document.documentElement.lang === "fr" ? "Nouvel ordre enregistré." : "New order saved.");
      // Pages of a category hold only part of its articles: reload to show the saved order.
      window.location.reload();
    }).catch(function () {
      announce(document.documentElement.lang === "fr"
        ? "L'ordre n'a pas pu être enregistré. Rechargez la page."
        : "The order could not be saved. Reload the page.");
    });
  }

  function enable(list) {
    var dragged = null;
    Array.prototype.forEach.call(list.querySelectorAll(":scope > li[data-id]"), function (item) {
      item.setAttribute("draggable", "true");
      item.addEventListener("dragstart", function (event) {
        dragged = item;
        item.classList.add("is-dragging");
        event.dataTransfer.effectAllowed = "move";
        event.dataTransfer.setData("text/plain", item.getAttribute("data-id"));
      });
      item.addEventListener("dragend", function () {
        item.classList.remove("is-dragging");
        dragged = null;
      });
      item.addEventListener("dragover", function (event) {
        if (!dragged || dragged === item || dragged.parentNode !== list) {
          return;
        }
        event.preventDefault();
        item.classList.add("is-drop-target");
      });
      item.addEventListener("dragleave", function () {
        item.classList.remove("is-drop-target");
      });
      item.addEventListener("drop", function (event) {
        event.preventDefault();
        item.classList.remove("is-drop-target");
        if (!dragged || dragged === item || dragged.parentNode !== list) {
          return;
        }
        var items = Array.prototype.slice.call(list.children);
        if (items.indexOf(dragged) < items.indexOf(item)) {
          list.insertBefore(dragged, item.nextSibling);
        } else {
          list.insertBefore(dragged, item);
        }
        save(list);
      });
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("[data-reorder-url]"), enable);
})();
