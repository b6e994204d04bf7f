// Submits a form marked data-autosubmit once the page loads (the approved `az login` code,
// posted to az's listener on this computer); its button does the same without scripts.
for (const form of document.querySelectorAll('form[data-autosubmit]')) form.submit();
