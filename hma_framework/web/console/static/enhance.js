/* Progressive enhancement for forms marked data-enhance="id1 id2": submit them in the
   background and swap in the elements with those ids from the page the server answers
   with, so an analyst keeps their place in a long list. Without JavaScript the same forms
   post and redirect as usual; the server does every check either way. */
(function () {
  "use strict";

  function report(ids, text) {
    var box = document.getElementById(ids[ids.length - 1]);
    if (box) {
      var p = document.createElement("p");
      p.className = "message error";
      p.setAttribute("role", "alert");
      p.textContent = text;
      box.replaceChildren(p);
    }
  }

  function swap(html, ids, status) {
    var answer = new DOMParser().parseFromString(html, "text/html");
    var missing = false;
    ids.forEach(function (id) {
      var mine = document.getElementById(id);
      var theirs = answer.getElementById(id);
      if (mine && theirs) {
        mine.replaceWith(document.importNode(theirs, true));
      } else {
        missing = true;
      }
    });
    if (missing) {  /* another page came back (the session ended): say what it said */
      var said = answer.querySelector(".message");
      report(ids, said ? said.textContent : "The server answered " + status + ".");
    }
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.enhance) {
      return;
    }
    event.preventDefault();
    var ids = form.dataset.enhance.split(/\s+/).filter(Boolean);
    var body = new FormData(form, event.submitter || undefined);
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    fetch(form.action, { method: "POST", body: body, credentials: "same-origin" })
      .then(function (response) {
        return response.text().then(function (html) {
          if (!(response.headers.get("Content-Type") || "").startsWith("text/html")) {
            throw new Error("unexpected answer " + response.status);
          }
          swap(html, ids, response.status);
        });
      })
      .catch(function (error) {
        report(ids, "Not sent: " + error.message + ". Reload the page and try again.");
      })
      .finally(function () {
        buttons.forEach(function (b) { b.disabled = false; });
      });
  });
})();
