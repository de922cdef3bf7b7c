/*
 * wsirc.js: a small IRC client (RFC 1459/2812 subset) over websock.js, written for this
 * project. NICK/USER on connect, JOIN the channel once registered (001), PRIVMSG to it,
 * PONG to PING, the names list (353/366, JOIN/PART/QUIT/NICK updates), and a readable log.
 * "/command args" lines are sent raw (e.g. "/nick other", "/me waves" as ACTION).
 * Exposes `window.wsirc` (state, for tests and debugging).
 */
(function () {
  'use strict';

  const state = { connected: false, registered: false, joined: null, nick: null, users: new Set() };
  window.wsirc = state;
  const $ = (id) => document.getElementById(id);
  const messages = $('messages');
  let sock = null, channel = '', lineBuf = '';
  const decoder = new TextDecoder('utf-8');
  const encoder = new TextEncoder();

  const setStatus = (t) => { $('status').textContent = t; };

  function show(parts, cls) {
    const div = document.createElement('div');
    if (cls) div.className = cls;
    const ts = new Date().toTimeString().slice(0, 5);
    div.append(ts + ' ');
    for (const p of parts) {
      if (typeof p === 'string') div.append(p);
      else {
        const span = document.createElement('span');
        span.className = p.cls;
        span.textContent = p.text;
        div.append(span);
      }
    }
    const atBottom = messages.scrollTop + messages.clientHeight >= messages.scrollHeight - 4;
    messages.appendChild(div);
    while (messages.children.length > 2000) messages.removeChild(messages.firstChild);
    if (atBottom) messages.scrollTop = messages.scrollHeight;
  }

  function renderUsers() {
    const ul = $('users');
    ul.textContent = '';
    for (const u of Array.from(state.users).sort((a, b) => a.replace(/^[@+]/, '').localeCompare(b.replace(/^[@+]/, '')))) {
      const li = document.createElement('li');
      li.textContent = u;
      ul.appendChild(li);
    }
  }

  const bare = (n) => n.replace(/^[@+%~&]/, '');
  function dropUser(nick) {
    for (const u of state.users) if (bare(u) === nick) state.users.delete(u);
  }

  function send(line) {
    // IRC lines are at most 512 bytes including CR LF; no CR/LF inside.
    line = line.replace(/[\r\n]/g, ' ');
    sock.send(encoder.encode(line + '\r\n'));
  }

  // ":prefix COMMAND params :trailing" -> {prefix, nick, command, params[]}
  function parse(line) {
    const m = { prefix: '', command: '', params: [] };
    let rest = line;
    if (rest.startsWith('@')) rest = rest.slice(rest.indexOf(' ') + 1); // IRCv3 tags
    if (rest.startsWith(':')) {
      const sp = rest.indexOf(' ');
      m.prefix = rest.slice(1, sp < 0 ? undefined : sp);
      rest = sp < 0 ? '' : rest.slice(sp + 1);
    }
    const t = rest.indexOf(' :');
    const head = t < 0 ? rest : rest.slice(0, t);
    const words = head.split(' ').filter(Boolean);
    m.command = (words.shift() || '').toUpperCase();
    m.params = words;
    if (t >= 0) m.params.push(rest.slice(t + 2));
    m.nick = m.prefix.split('!')[0];
    return m;
  }

  function handle(line) {
    const m = parse(line);
    const p = m.params;
    switch (m.command) {
      case 'PING':
        send('PONG :' + (p[0] || ''));
        break;
      case '001':
        state.registered = true;
        state.nick = p[0];
        show([p[1] || 'Welcome'], 'server');
        if (channel) send('JOIN ' + channel);
        break;
      case '433': { // nick in use: try another
        const next = ($('nick').value || 'wsirc') + '_' + Math.floor(Math.random() * 1000);
        show(['Nick ' + p[1] + ' is in use, trying ' + next], 'server');
        send('NICK ' + next);
        break;
      }
      case '353': // NAMES reply: "= #chan :a @b +c"
        for (const n of (p[p.length - 1] || '').split(' ').filter(Boolean)) state.users.add(n);
        renderUsers();
        break;
      case '366':
        break;
      case 'JOIN':
        if (m.nick === state.nick) {
          state.joined = p[0];
          state.users.clear();
          $('message').disabled = false;
          $('send').disabled = false;
          setStatus('In ' + p[0] + ' as ' + state.nick);
        } else {
          state.users.add(m.nick);
          renderUsers();
        }
        show(['* ', { cls: 'nick', text: m.nick }, ' joined ' + p[0]], 'server');
        break;
      case 'PART':
        dropUser(m.nick);
        renderUsers();
        show(['* ', { cls: 'nick', text: m.nick }, ' left ' + p[0] + (p[1] ? ' (' + p[1] + ')' : '')], 'server');
        break;
      case 'QUIT':
        dropUser(m.nick);
        renderUsers();
        show(['* ', { cls: 'nick', text: m.nick }, ' quit' + (p[0] ? ' (' + p[0] + ')' : '')], 'server');
        break;
      case 'NICK':
        for (const u of Array.from(state.users)) {
          if (bare(u) === m.nick) { state.users.delete(u); state.users.add(u.slice(0, u.length - m.nick.length) + p[0]); }
        }
        if (m.nick === state.nick) state.nick = p[0];
        renderUsers();
        show(['* ', m.nick + ' is now known as ' + p[0]], 'server');
        break;
      case 'PRIVMSG':
      case 'NOTICE': {
        const text = p[1] || '';
        const target = p[0] === state.nick ? '(private) ' : p[0] === channel ? '' : p[0] + ' ';
        const action = /^\x01ACTION (.*)\x01$/.exec(text);
        if (action) show([target + '* ', { cls: 'nick', text: m.nick }, ' ' + action[1]]);
        else if (m.command === 'NOTICE' && !m.prefix.includes('!')) show([text], 'server'); // from the server
        else show([target + '<', { cls: 'nick', text: m.nick || m.prefix }, '> ' + text]);
        break;
      }
      case 'ERROR':
        show(['Error: ' + (p[0] || '')], 'server');
        break;
      default:
        if (/^\d{3}$/.test(m.command)) show([p.slice(1).join(' ')], 'server');
        break;
    }
  }

  function connect(host, port, tls, nick, chan) {
    channel = chan;
    lineBuf = '';
    state.registered = false;
    state.joined = null;
    state.users.clear();
    renderUsers();
    const url = (tls ? 'wss://' : 'ws://') + host + ':' + port + '/websockify';
    sock = new Websock();
    sock.on('open', () => {
      state.connected = true;
      setStatus('Connected to ' + url + ', registering as ' + nick);
      $('connect').textContent = 'Disconnect';
      send('NICK ' + nick);
      send('USER ' + nick + ' 0 * :wsirc user');
    });
    sock.on('message', () => {
      lineBuf += decoder.decode(sock.rQshiftBytes(), { stream: true });
      let i;
      while ((i = lineBuf.indexOf('\n')) >= 0) {
        const line = lineBuf.slice(0, i).replace(/\r$/, '');
        lineBuf = lineBuf.slice(i + 1);
        if (line) handle(line);
      }
    });
    sock.on('close', (e) => {
      state.connected = false;
      state.joined = null;
      $('message').disabled = true;
      $('send').disabled = true;
      $('connect').textContent = 'Connect';
      setStatus('Disconnected' + (e && e.code ? ' (code ' + e.code + ')' : ''));
    });
    sock.on('error', (e) => setStatus('Error: ' + (e && e.message ? e.message : e)));
    setStatus('Connecting to ' + url + ' ...');
    try {
      sock.open(url);
    } catch (e) {
      setStatus('Error: ' + e.message);
    }
  }

  const q = new URLSearchParams(location.search);
  $('host').value = q.get('host') || location.hostname;
  $('port').value = q.get('port') || location.port || (location.protocol === 'https:' ? '443' : '80');
  $('tls').checked = q.has('tls') ? q.get('tls') === '1' || q.get('tls') === 'true' : location.protocol === 'https:';
  if (q.get('nick')) $('nick').value = q.get('nick');
  if (q.get('channel')) $('channel').value = q.get('channel');

  $('form').addEventListener('submit', (e) => {
    e.preventDefault();
    if (state.connected) {
      send('QUIT :bye');
      sock.close();
      return;
    }
    let chan = $('channel').value.trim();
    if (chan && !/^[#&+!]/.test(chan)) chan = '#' + chan;
    connect($('host').value.trim(), $('port').value.trim(), $('tls').checked, $('nick').value.trim() || 'wsirc', chan);
  });

  $('say').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = $('message').value;
    if (!text || !state.connected) return;
    $('message').value = '';
    if (text.startsWith('/me ')) {
      send('PRIVMSG ' + channel + ' :\x01ACTION ' + text.slice(4) + '\x01');
      show(['* ', { cls: 'me', text: state.nick }, ' ' + text.slice(4)]);
    } else if (text.startsWith('/')) {
      send(text.slice(1));
    } else {
      send('PRIVMSG ' + channel + ' :' + text);
      show(['<', { cls: 'me', text: state.nick }, '> ' + text]);
    }
  });
})();
