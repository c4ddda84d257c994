// Back-office forms: they PATCH or POST, then say what happened, in words or next to the fields.

import { h, showFieldErrors } from './dom.js';
import { describe } from './api.js';

// A form that PATCHes/POSTs and shows the API's answer in words.
export function actionForm(id, children, submitLabel, onSubmit) {
  const alert = h('p', { class: 'error', role: 'alert', id: `${id}-error` });
  const status = h('p', { role: 'status', class: 'ok', id: `${id}-status` });
  const button = h('button', { type: 'submit', id: `${id}-submit` }, submitLabel);
  const form = h('form', { class: 'stack panel', id, novalidate: true }, children, alert, status, button);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    button.disabled = true;
    alert.textContent = '';
    status.textContent = '';
    try {
      status.textContent = (await onSubmit(new FormData(form), form)) || 'Saved.';
      showFieldErrors(form, null);
    } catch (err) {
      const marked = showFieldErrors(form, err.problem);
      alert.textContent = marked ? 'Please correct the fields marked above.' : describe(err);
      // The first field to correct may be far above the button: take the keyboard there.
      if (marked) form.querySelector('[aria-invalid]')?.focus();
    } finally {
      button.disabled = false;
    }
  });
  return form;
}
