// Scan to sign in: asks the server, while the QR code is shown, whether the phone has answered; shows the
// number to type once the code was scanned, and continues when the phone approved. Without scripts the
// page works all the same with its Continue button and Refresh link.
(function () {
  'use strict';
  var box = document.getElementById('scan');
  if (!box) return;
  var status = document.getElementById('scan-status');
  var numberLine = document.getElementById('scan-number-line');
  var number = document.getElementById('scan-number');
  var url = '/login/scan/status?handle=' + encodeURIComponent(box.dataset.handle);
  function poll() {
    fetch(url, { credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) { return r.json(); })
      .then(function (s) {
        if (s.status === 'scanned') {
          number.textContent = String(s.number);
          numberLine.hidden = false;
        } else if (s.status === 'approved') {
          status.textContent = box.dataset.approved;
          document.getElementById('scan-finish').submit();
          return;
        } else if (s.status === 'denied' || s.status === 'expired' || s.status === 'used') {
          status.textContent = box.dataset[s.status];
          return;
        }
        setTimeout(poll, 1500);
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 1000);
})();
