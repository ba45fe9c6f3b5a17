// Laravel-style front end: Echo (broadcaster "reverb") over pusher-js, talking to Herald.
// Query string: host, port, key, user (id), name, room, path (optional ws path prefix),
// broadcaster ('reverb', the default, or 'pusher').
(function () {
  var q = new URLSearchParams(location.search);
  var user = q.get('user') || '1';
  var name = q.get('name') || 'User ' + user;
  var room = q.get('room') || 'lobby';
  var $ = function (id) { return document.getElementById(id); };
  $('whoami').textContent = '— ' + name + ' (#' + user + ')';

  var EchoCtor = window.Echo && window.Echo.default ? window.Echo.default : window.Echo;
  var broadcaster = q.get('broadcaster') || 'reverb';
  var echo = new EchoCtor({
    broadcaster: broadcaster,
    cluster: broadcaster === 'pusher' ? 'mt1' : undefined,
    key: q.get('key') || 'app-key',
    wsHost: q.get('host') || location.hostname,
    wsPort: Number(q.get('port') || 8080),
    wssPort: Number(q.get('port') || 8080),
    wsPath: q.get('path') || '',
    forceTLS: false,
    enabledTransports: ['ws', 'wss'],
    // Like Laravel's /broadcasting/auth; the demo server identifies the user by this header
    // (a real app would use its session cookie).
    authEndpoint: '/broadcasting/auth',
    auth: { headers: { 'X-User-Id': user, 'X-User-Name': name } },
  });
  window.herald = { echo: echo, notifications: [], members: {} };

  var pusher = echo.connector.pusher;
  pusher.connection.bind('state_change', function (s) {
    $('status').textContent = s.current;
    document.body.dataset.state = s.current;
  });

  // Notification bell: Laravel's BroadcastNotificationCreated on private-App.Models.User.{id}.
  echo.private('App.Models.User.' + user).notification(function (n) {
    window.herald.notifications.push(n);
    var empty = $('no-notifications'); if (empty) empty.remove();
    var li = document.createElement('li');
    li.className = 'notification';
    li.textContent = n.title || n.message || JSON.stringify(n);
    var type = document.createElement('span'); type.className = 'type'; type.textContent = n.type || '';
    li.appendChild(type);
    $('notifications').prepend(li);
    var count = window.herald.notifications.length;
    $('bell-count').textContent = String(count);
    $('bell-count').dataset.count = String(count);
  });

  // Presence list.
  function renderMembers() {
    var ul = $('members'); ul.innerHTML = '';
    var ids = Object.keys(window.herald.members).sort();
    ids.forEach(function (id) {
      var li = document.createElement('li'); li.dataset.userId = id;
      li.textContent = window.herald.members[id].name; ul.appendChild(li);
    });
    $('member-count').textContent = String(ids.length);
  }
  echo.join(room)
    .here(function (users) { window.herald.members = {}; users.forEach(function (u) { window.herald.members[u.id] = u; }); renderMembers(); })
    .joining(function (u) { window.herald.members[u.id] = u; renderMembers(); })
    .leaving(function (u) { delete window.herald.members[u.id]; renderMembers(); })
    .error(function (e) { $('status').textContent = 'presence error ' + JSON.stringify(e); });
})();
