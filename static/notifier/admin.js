/* Notifier's admin pages: a form with data-confirm="question" asks before it is sent.
   (A static file, not an onsubmit="" attribute: the admin's Content-Security-Policy runs no
   inline code, and a refused handler would send the form without asking.) */
document.addEventListener(
  "submit",
  function (event) {
    const question = event.target.dataset && event.target.dataset.confirm;
    if (question && !window.confirm(question)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  },
  true,
);
