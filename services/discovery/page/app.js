// "Help near me": asks the browser for the position on request, rounds it to about 100 m,
// sends it to this node only, and shows the answer. Nothing is stored. Without JavaScript
// the form does the same search through the server.
(function () {
  'use strict';
  var strings = JSON.parse(document.getElementById('strings').textContent);
  var locate = document.getElementById('locate');
  var status = document.getElementById('status');
  var results = document.getElementById('results');
  var service = document.getElementById('service');
  if (!('geolocation' in navigator) || !window.fetch || !window.URLSearchParams) {
    return;
  }
  locate.hidden = false;

  // Three decimals of a degree: at most about 111 m of latitude.
  function round(x) {
    return Math.round(x * 1000) / 1000;
  }

  function show(params) {
    status.textContent = strings.searching;
    params.set('fragment', '1');
    fetch('/near?' + params.toString(), { headers: { Accept: 'text/html' }, credentials: 'omit' })
      .then(function (response) {
        return response.text().then(function (html) {
          results.innerHTML = html;
          status.textContent = response.ok ? '' : strings.error;
          results.focus();
        });
      })
      .catch(function () {
        status.textContent = strings.error;
      });
  }

  locate.addEventListener('click', function () {
    status.textContent = strings.locating;
    navigator.geolocation.getCurrentPosition(
      function (position) {
        var params = new URLSearchParams();
        params.set('lat', String(round(position.coords.latitude)));
        params.set('lng', String(round(position.coords.longitude)));
        if (service.value) {
          params.set('service', service.value);
        }
        show(params);
      },
      function () {
        status.textContent = strings.location_denied;
      },
      { maximumAge: 60000, timeout: 15000 }
    );
  });
})();
