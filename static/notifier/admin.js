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

/* A select with data-reload-with (the template form's channel, on a new template) reloads
   the page with its value and the form's other choices in the address: the form then shows
   the fields that choice brings (a channel's template fields). */
document.addEventListener("change", function (event) {
  const select = event.target;
  if (!(select instanceof HTMLSelectElement) || !select.dataset.reloadWith) return;
  const url = new URL(window.location.href);
  for (const name of select.dataset.reloadWith.split(",")) {
    const field = select.form && select.form.elements[name];
    if (field && field.value) url.searchParams.set(name, field.value);
    else url.searchParams.delete(name);
  }
  window.location.assign(url.toString());
});
