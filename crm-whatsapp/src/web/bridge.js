// The crm bridge: the one file that knows WhatsApp Web's internals.
//
// It is injected into the WhatsApp Web page before the page's own scripts
// run (Page.addScriptToEvaluateOnNewDocument), waits until WhatsApp Web has
// loaded the modules below, and then
// - reports to crm through the binding `__crmEmit` (Runtime.addBinding), one
//   JSON text per call: {"type":"ready"|"state"|"qr"|"message"|"ack", ...};
// - answers crm's calls on `window.__crm` (send, read, lookups), each a
//   Promise of a JSON-serialisable value.
//
// When a WhatsApp Web release moves or renames a module, this file is the
// fix: every module it uses is listed in MODULES with what it is for, and
// the rest of the file reaches WhatsApp Web only through `mod(name)`.
// PINNED_VERSION in web/mod.rs names the release it was written against.
(() => {
  'use strict';
  if (window.__crm) return;

  // Modules of WhatsApp Web's module system (`window.require`, since the
  // 2.3000 releases; before them a webpack chunk registry).
  const MODULES = {
    // Socket: the connection state model (`state`: OPENING, PAIRING,
    // CONNECTED, CONFLICT, UNPAIRED, UNPAIRED_IDLE, TIMEOUT, …) and its
    // `change:state` event — what whatsapp-web.js reports as getState().
    WAWebSocketModel: 'connection state',
    // The collections; `Msg` emits `add` for every new message and
    // `change:ack` when a message's ack moves.
    WAWebCollections: 'messages',
    // createWid(id): WhatsApp ids (`5511987654321@c.us`, `…@lid`, `…@g.us`).
    WAWebWidFactory: 'WhatsApp ids',
    // findOrCreateLatestChat(wid) → {chat}: the chat a send goes to.
    WAWebFindChatAction: 'the chat of a recipient',
    // addAndSendMsgToChat(chat, props) → [added, sent]: sends a message.
    WAWebSendMsgChatAction: 'sending',
    // MsgKey: message keys; MsgKey.newId() mints a message id.
    WAWebMsgKey: 'message ids',
    // getMaybeMeUser(): the paired account's own id.
    WAWebUserPrefsMeUser: 'own id',
    // sendSeen(chat): marks a chat's messages read (blue ticks).
    WAWebUpdateUnreadChatAction: 'read receipts',

    // ----- groups (see the groups block below) -----
    // WAWebCollections (above) also holds `GroupMetadata` (per group id:
    // subject, desc, participants with isAdmin/isSuperAdmin) and `Chat`.
    // createGroup({title, …}, participant wids) → {wid}: creates a group.
    WAWebGroupCreateJob: 'group creation',
    // setGroupSubject(group wid, subject), setGroupDescription(group wid,
    // text, new description id, previous description id).
    WAWebGroupModifyInfoJob: 'group subject and description',
    // addParticipants / removeParticipants / promoteParticipants /
    // demoteParticipants(group chat, participant wids).
    WAWebModifyParticipantsGroupAction: 'group participants and admins',
    // sendExitGroup(group chat): leaves a group.
    WAWebExitGroupAction: 'leaving groups',
    // queryAndUpdateGroupMetadataById({id}): refreshes a group's metadata
    // from the server into GroupMetadata.
    WAWebGroupQueryJob: 'group metadata',
    // queryMsgInfo(message key) → {delivery: [{id, t}], read: [...],
    // played: [...]}: a group message's receipts per participant.
    WAWebApiMessageInfoStore: 'group receipts per participant',
    // -- identity (LIDs, numbers on WhatsApp) --
    // getPhoneNumber(lidWid) → the phone's wid, getCurrentLid(phoneWid) →
    // the LID wid, each when this device knows it: the LID ↔ phone map.
    WAWebApiContact: 'LID and phone of a contact',
    // queryWidExists(wid) → {wid, …} when the number is on WhatsApp (the
    // server answers with the id it is registered under), else null: what
    // whatsapp-web.js's getNumberId and Baileys' onWhatsApp ask.
    WAWebQueryExistsJob: 'whether a number is on WhatsApp',
    // -- media (sending files, downloading received ones) --
    // createFromData(file, mimetype): a file as WhatsApp Web's media
    // pipeline takes it.
    WAWebMediaOpaqueData: 'a file to send',
    // prepRawMedia(opaqueData, {asDocument}) → a MediaPrep whose
    // waitForPrep() gives the prepared media (type, mimetype, size, filehash).
    WAWebPrepRawMedia: 'preparing a file',
    // getOrCreateMediaObject(filehash): the media object an upload fills.
    WAWebMediaStorage: 'media objects',
    // msgToMediaType({type}): the upload's media type of a message type.
    WAWebMmsMediaTypes: 'media types',
    // uploadMedia({mimetype, mediaObject, mediaType}) → {mediaEntry}:
    // encrypts and uploads; the entry has mediaKey, directPath, encFilehash.
    WAWebMediaMmsV4Upload: 'uploading a file',
    // downloadManager.downloadAndMaybeDecrypt({directPath, mediaKey, type,
    // filehash, encFilehash, …}) → ArrayBuffer: a received file's bytes.
    WAWebDownloadManager: 'downloading a file',
    // -- pairing by phone-number code ("link with phone number") --
    // setPairingType('ALT_DEVICE_LINKING'), initializeAltDeviceLinking(),
    // startAltLinkingFlow(phone, showNotification) → the 8-character code
    // the phone asks for (WhatsApp → Linked devices → Link with phone number).
    WAWebAltDeviceLinkingApi: 'pairing by code',
  };
  // Besides the modules:
  // - `window.Debug.VERSION`: the running WhatsApp Web release.
  // - the pairing screen's QR element, `[data-ref]`, whose `data-ref`
  //   attribute holds the text the QR code encodes (it changes every ~20 s).

  const emit = (event) => {
    try {
      window.__crmEmit(JSON.stringify(event));
    } catch (_) {
      // The binding is gone (the page is closing): nothing to tell.
    }
  };
  const mod = (name) => {
    if (!(name in MODULES)) throw new Error('the bridge does not declare module ' + name);
    return window.require(name);
  };
  const ready = () => {
    try {
      return Boolean(window.Debug && window.Debug.VERSION && window.require &&
        mod('WAWebSocketModel').Socket && mod('WAWebCollections').Msg);
    } catch (_) {
      return false;
    }
  };
  const wid = (id) => mod('WAWebWidFactory').createWid(id);
  const serial = (w) => (w && (w._serialized || (w.user && w.server && w.user + '@' + w.server))) || null;

  // -- identity: the LID and the phone of a message's sender, each when
  // this device knows it (a `…@lid` sender's phone is often known).
  const lidOf = (w) => {
    try {
      return serial(mod('WAWebApiContact').getCurrentLid(w));
    } catch (_) {
      return null;
    }
  };
  const phoneOf = (w) => {
    try {
      return serial(mod('WAWebApiContact').getPhoneNumber(w));
    } catch (_) {
      return null;
    }
  };
  const senderOf = (m) => {
    const w = m.author || m.from;
    const id = serial(w);
    if (!id || m.id && m.id.fromMe) return null;
    if (id.endsWith('@lid')) return { lid: id, phone: phoneOf(w) };
    if (id.endsWith('@c.us')) return { lid: lidOf(w), phone: id };
    return null;
  };
  // Whether `user` (digits) is on WhatsApp: {id} with the id it is
  // registered under (`…@c.us`), or null.
  const queryExists = async (user) => {
    const found = await mod('WAWebQueryExistsJob').queryWidExists(wid(user + '@c.us'));
    return { id: (found && serial(found.wid)) || null };
  };
  const identity = { queryExists };

  // -- media: what a message's file is; sending and downloading files.
  const MEDIA_TYPES = ['image', 'audio', 'ptt', 'video', 'document', 'sticker'];
  const mediaOf = (m) => (MEDIA_TYPES.includes(m.type) ? {
    mimetype: m.mimetype || null,
    filename: m.filename || null,
    caption: typeof m.caption === 'string' ? m.caption : null,
    size: typeof m.size === 'number' ? m.size : null,
  } : null);
  const toBase64 = (buffer) => {
    const bytes = new Uint8Array(buffer);
    let text = '';
    for (let i = 0; i < bytes.length; i += 0x8000) {
      text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(text);
  };
  const fromBase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  // Sends {kind, mimetype, filename, caption, data (base64)} to `to`.
  const sendMedia = async (to, media) => {
    const file = new File([fromBase64(media.data)], media.filename || 'file', { type: media.mimetype });
    const opaque = await mod('WAWebMediaOpaqueData').createFromData(file, media.mimetype);
    const prep = mod('WAWebPrepRawMedia').prepRawMedia(opaque, { asDocument: media.kind === 'document' });
    const data = await prep.waitForPrep();
    const mediaObject = mod('WAWebMediaStorage').getOrCreateMediaObject(data.filehash);
    const mediaType = mod('WAWebMmsMediaTypes').msgToMediaType({ type: data.type });
    const uploaded = await mod('WAWebMediaMmsV4Upload').uploadMedia({ mimetype: data.mimetype, mediaObject, mediaType });
    const entry = uploaded && uploaded.mediaEntry;
    if (!entry || !entry.directPath) throw new Error('the file was not uploaded');
    return send(to, {
      type: data.type, mimetype: data.mimetype, size: data.size, filehash: data.filehash,
      caption: media.caption || undefined, filename: media.filename || undefined,
      mediaKey: entry.mediaKey, mediaKeyTimestamp: entry.mediaKeyTimestamp,
      directPath: entry.directPath, encFilehash: entry.encFilehash, clientUrl: entry.mmsUrl,
    });
  };
  // A received message's file: {mimetype, data (base64)}.
  const downloadMedia = async (id) => {
    const m = mod('WAWebCollections').Msg.get(id);
    if (!m) throw new Error('no such message on the page');
    if (!m.directPath) throw new Error('the message has no file (or it expired)');
    const buffer = await mod('WAWebDownloadManager').downloadManager.downloadAndMaybeDecrypt({
      directPath: m.directPath, encFilehash: m.encFilehash, filehash: m.filehash, mediaKey: m.mediaKey,
      mediaKeyTimestamp: m.mediaKeyTimestamp, type: m.type, signal: new AbortController().signal,
    });
    return { mimetype: m.mimetype || null, data: toBase64(buffer) };
  };
  const media = { sendMedia, downloadMedia };

  // -- contacts sync: the phone's saved contacts and its one-to-one chats
  // (from the `Contact` and `Chat` collections of WAWebCollections),
  // reported in batches once connected, then each new chat and each name
  // change as it happens.
  const contactOf = (c, chat) => {
    const id = serial(c.id);
    const lid = id && id.endsWith('@lid') ? id : lidOf(c.id);
    const phone = id && id.endsWith('@c.us') ? id : phoneOf(c.id);
    return {
      id, lid, phone,
      name: c.name || (chat && chat.name) || null,
      push_name: c.pushname || null,
    };
  };
  const person = (id) => Boolean(id) && (id.endsWith('@c.us') || id.endsWith('@lid'));
  const reportContacts = (list) => {
    for (let i = 0; i < list.length; i += 200) emit({ type: 'contacts', contacts: list.slice(i, i + 200) });
  };
  const syncContacts = () => {
    const { Contact, Chat } = mod('WAWebCollections');
    const found = new Map();
    for (const c of Contact.getModelsArray()) {
      if (c.isMyContact && person(serial(c.id))) found.set(serial(c.id), contactOf(c, null));
    }
    for (const chat of Chat.getModelsArray()) {
      const id = serial(chat.id);
      if (person(id)) found.set(id, contactOf(Contact.get(id) || { id: chat.id }, chat));
    }
    reportContacts([...found.values()]);
  };
  let contactsHooked = false;
  const hookContacts = () => {
    if (contactsHooked) return;
    contactsHooked = true;
    const { Contact, Chat } = mod('WAWebCollections');
    Chat.on('add', (chat) => {
      const id = serial(chat.id);
      if (person(id)) reportContacts([contactOf(Contact.get(id) || { id: chat.id }, chat)]);
    });
    Contact.on('change:name', (c) => {
      if (person(serial(c.id))) reportContacts([contactOf(c, null)]);
    });
  };
  const onConnected = (state) => {
    if (String(state) !== 'CONNECTED') return;
    try {
      hookContacts();
      syncContacts();
    } catch (_) {
      // Collections not loaded yet: the next CONNECTED reports them.
    }
  };

  // -- pairing by code: the code for `phone` (digits, country first).
  const requestPairingCode = async (phone) => {
    const api = mod('WAWebAltDeviceLinkingApi');
    api.setPairingType('ALT_DEVICE_LINKING');
    await api.initializeAltDeviceLinking();
    return String(await api.startAltLinkingFlow(phone, true));
  };
  const pairing = { requestPairingCode };

  // A message as crm reads it.
  const message = (m) => ({
    id: serial(m.id) || String(m.id && m.id.id),
    from_me: Boolean(m.id && m.id.fromMe),
    from: serial(m.from),
    to: serial(m.to),
    author: serial(m.author),
    kind: m.type,
    body: typeof m.body === 'string' ? m.body : null,
    notify_name: m.notifyName || null,
    timestamp: typeof m.t === 'number' ? m.t : null,
    ack: typeof m.ack === 'number' ? m.ack : null,
    sender: senderOf(m),
    media: mediaOf(m),
  });

  let lastQr = null;
  const watchQr = () => {
    const read = () => {
      const el = document.querySelector('[data-ref]');
      const code = el && el.getAttribute('data-ref');
      if (code && code !== lastQr) {
        lastQr = code;
        emit({ type: 'qr', code });
      }
    };
    new MutationObserver(read).observe(document.documentElement, {
      subtree: true, childList: true, attributes: true, attributeFilter: ['data-ref'],
    });
    read();
  };

  const hook = () => {
    const socket = mod('WAWebSocketModel').Socket;
    const msgs = mod('WAWebCollections').Msg;
    emit({ type: 'ready', version: String(window.Debug.VERSION) });
    emit({ type: 'state', state: String(socket.state) });
    socket.on('change:state', (_model, state) => emit({ type: 'state', state: String(state) }));
    socket.on('change:state', (_model, state) => onConnected(state));
    onConnected(socket.state);
    msgs.on('add', (m) => {
      if (m && m.isNewMsg) emit({ type: 'message', message: message(m) });
    });
    msgs.on('change:ack', (m, ack) => {
      emit({ type: 'ack', id: serial(m.id), ack: typeof ack === 'number' ? ack : m.ack });
      groupReceipts(m);
    });
  };

  const start = () => {
    if (document.documentElement) watchQr();
    else document.addEventListener('DOMContentLoaded', watchQr, { once: true });
    const wait = () => (ready() ? hook() : setTimeout(wait, 100));
    wait();
  };

  const me = () => mod('WAWebUserPrefsMeUser').getMaybeMeUser();

  const chatOf = async (to) => {
    const found = await mod('WAWebFindChatAction').findOrCreateLatestChat(wid(to));
    return found.chat;
  };

  const send = async (to, props) => {
    const chat = await chatOf(to);
    const Key = mod('WAWebMsgKey');
    const from = me();
    const id = new Key({ from, to: chat.id, id: await Key.newId(), selfDir: 'out' });
    const msg = Object.assign({
      id, from, to: chat.id, t: Math.floor(Date.now() / 1000), ack: 0,
      local: true, self: 'out', isNewMsg: true,
    }, props);
    const [added, sent] = mod('WAWebSendMsgChatAction').addAndSendMsgToChat(chat, msg);
    await added;
    const result = await sent;
    if (result && result.messageSendResult && result.messageSendResult !== 'OK') {
      throw new Error('not sent: ' + result.messageSendResult);
    }
    return { id: serial(id) };
  };

  // ----- groups ------------------------------------------------------------
  // Each call answers {ok: value} or {error: 'not_found' | 'not_member',
  // detail}; anything else WhatsApp Web throws reaches crm as a refusal.
  const isGroup = (id) => typeof id === 'string' && /@g\.us$/.test(id);
  const groupError = (error, detail) => ({ error, detail: String(detail || error) });
  const members = (meta) => {
    const list = meta && meta.participants;
    const all = list && typeof list.getModelsArray === 'function' ? list.getModelsArray() : (list || []);
    // A member named by a LID comes with their phone when this device
    // knows it (WAWebApiContact, above); crm resolves the rest.
    return Array.from(all).map((p) => {
      const id = serial(p.id);
      return {
        id,
        phone: id && id.endsWith('@lid') ? phoneOf(p.id) : null,
        admin: Boolean(p.isAdmin || p.isSuperAdmin),
      };
    });
  };
  // The group's metadata when the own number is in it, else null.
  const groupMeta = async (id) => {
    if (!isGroup(id)) return null;
    await mod('WAWebGroupQueryJob').queryAndUpdateGroupMetadataById({ id: wid(id) });
    const meta = mod('WAWebCollections').GroupMetadata.get(id);
    const mine = serial(me());
    if (!meta || !members(meta).some((p) => p.id === mine)) return null;
    return meta;
  };
  const groupView = (id, meta) => ({
    jid: id,
    subject: String(meta.subject || ''),
    description: meta.desc ? String(meta.desc) : null,
    participants: members(meta),
  });
  // Runs `f(meta, chat)` on a group the own number is in.
  const onGroup = async (id, f) => {
    const meta = await groupMeta(id);
    if (!meta) return groupError('not_found', 'not in group ' + id);
    const chat = await chatOf(id);
    return { ok: await f(meta, chat) };
  };
  const groupInfo = (id) => onGroup(id, (meta) => groupView(id, meta));
  const changeParticipants = (action, needMember) => (id, users) => onGroup(id, async (meta, chat) => {
    const present = new Set(members(meta).map((p) => p.id));
    const missing = users.filter((u) => !present.has(u));
    if (needMember && missing.length) throw Object.assign(new Error(missing[0]), { crm: 'not_member' });
    const todo = action === 'addParticipants' ? missing : users.filter((u) => present.has(u));
    if (todo.length) await mod('WAWebModifyParticipantsGroupAction')[action](chat, todo.map(wid));
    return true;
  }).catch((e) => {
    if (e && e.crm) return groupError(e.crm, e.message);
    throw e;
  });
  // After an ack of an own group message: each participant's receipt.
  const groupReceipts = async (m) => {
    try {
      const to = serial(m.to) || serial(m.id && m.id.remote);
      if (!(m.id && m.id.fromMe) || !isGroup(to)) return;
      const info = await mod('WAWebApiMessageInfoStore').queryMsgInfo(m.id);
      if (!info) return;
      for (const [list, ack] of [['delivery', 2], ['read', 3], ['played', 4]]) {
        for (const r of info[list] || []) {
          emit({ type: 'group_receipt', id: serial(m.id), participant: serial(r.id), ack });
        }
      }
    } catch (_) {
      // Receipts per participant are a bonus over the ack itself.
    }
  };
  const groups = {
    createGroup: async (subject, users) => {
      const made = await mod('WAWebGroupCreateJob').createGroup({ title: subject, ephemeralDuration: 0 }, users.map(wid));
      const id = serial(made && (made.wid || made.gid || made.id));
      if (!id) throw new Error('WhatsApp Web did not answer a group id');
      return groupInfo(id);
    },
    setGroupSubject: (id, subject) => onGroup(id, async () => {
      await mod('WAWebGroupModifyInfoJob').setGroupSubject(wid(id), subject);
      return true;
    }),
    setGroupDescription: (id, text) => onGroup(id, async (meta) => {
      const Key = mod('WAWebMsgKey');
      await mod('WAWebGroupModifyInfoJob').setGroupDescription(wid(id), text, await Key.newId(), meta.descId);
      return true;
    }),
    addParticipants: changeParticipants('addParticipants', false),
    removeParticipants: changeParticipants('removeParticipants', false),
    promoteParticipants: changeParticipants('promoteParticipants', true),
    demoteParticipants: changeParticipants('demoteParticipants', true),
    listGroups: async () => {
      const mine = serial(me());
      const all = mod('WAWebCollections').GroupMetadata;
      const list = typeof all.getModelsArray === 'function' ? all.getModelsArray() : Array.from(all.models || []);
      return {
        ok: list
          .map((meta) => groupView(serial(meta.id), meta))
          .filter((g) => isGroup(g.jid) && g.participants.some((p) => p.id === mine)),
      };
    },
    groupInfo,
    leaveGroup: (id) => onGroup(id, async (_meta, chat) => {
      await mod('WAWebExitGroupAction').sendExitGroup(chat);
      return true;
    }),
    sendGroupText: (id, text) => onGroup(id, () => send(id, { type: 'chat', body: text })),
  };

  window.__crm = Object.freeze({
    ...groups,
    ...identity,
    ...media,
    ...pairing,
    version: () => (window.Debug && window.Debug.VERSION) || null,
    me: () => serial(me()),
    sendText: (to, text) => send(to, { type: 'chat', body: text }),
    markRead: async (chatId) => {
      await mod('WAWebUpdateUnreadChatAction').sendSeen(await chatOf(chatId));
      return true;
    },
  });
  start();
})();
