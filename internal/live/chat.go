package live

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"plaza/internal/db"
	"plaza/internal/page"
)

// MaxMessageLen is the longest chat message, in characters.
const MaxMessageLen = 4000

// ValidationError carries per-field messages.
type ValidationError struct{ Fields map[string][]string }

func (e *ValidationError) Error() string { return "live: invalid input" }

// Message is a chat message.
type Message struct {
	ID             int64   `json:"id"`
	ConversationID int64   `json:"conversation_id"`
	Sender         Summary `json:"sender"`
	Content        string  `json:"content"`
	CreatedAt      string  `json:"created_at"`
}

// Conversation is a one-to-one conversation as one participant sees it.
type Conversation struct {
	ID           int64     `json:"id"`
	Participants []Summary `json:"participants"`
	LastMessage  *Message  `json:"last_message"`
	UnreadCount  int64     `json:"unread_count"`
	activity     int64
}

// participants loads both members of a conversation, or ErrNotFound when
// userID is not one of them (others' conversations do not exist for them).
func (s *Service) participants(ctx context.Context, convID, userID int64) (a, b int64, err error) {
	err = s.db.QueryRow(ctx, `SELECT user_a, user_b FROM conversations WHERE id = ?`, convID).Scan(&a, &b)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && userID != a && userID != b) {
		return 0, 0, ErrNotFound
	}
	if err != nil {
		return 0, 0, fmt.Errorf("live: conversation: %w", err)
	}
	return a, b, nil
}

// OpenConversation returns the conversation of me and username, creating
// it when needed (created tells which).
func (s *Service) OpenConversation(ctx context.Context, me int64, username string) (Conversation, bool, error) {
	var other int64
	err := s.db.QueryRow(ctx, `SELECT id FROM users WHERE lower(username) = lower(?) AND is_active = TRUE`, username).Scan(&other)
	if errors.Is(err, sql.ErrNoRows) {
		return Conversation{}, false, ErrNotFound
	}
	if err != nil {
		return Conversation{}, false, fmt.Errorf("live: find user: %w", err)
	}
	if other == me {
		return Conversation{}, false, ErrSelf
	}
	a, b := min(me, other), max(me, other)
	res, err := s.db.Exec(ctx, `INSERT INTO conversations (user_a, user_b, created_at) VALUES (?, ?, ?) ON CONFLICT (user_a, user_b) DO NOTHING`,
		a, b, s.now().UTC())
	if err != nil {
		return Conversation{}, false, fmt.Errorf("live: open conversation: %w", err)
	}
	created, _ := res.RowsAffected()
	var id int64
	if err := s.db.QueryRow(ctx, `SELECT id FROM conversations WHERE user_a = ? AND user_b = ?`, a, b).Scan(&id); err != nil {
		return Conversation{}, false, fmt.Errorf("live: open conversation: %w", err)
	}
	c, err := s.conversation(ctx, me, id)
	return c, created == 1, err
}

const conversationQuery = `SELECT c.id, COALESCE(c.last_message_id, 0),
	ua.id, ua.username, COALESCE(pa.picture_key, ''), EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = ? AND f.followee_id = ua.id),
	ub.id, ub.username, COALESCE(pb.picture_key, ''), EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = ? AND f.followee_id = ub.id),
	m.id, m.content, m.created_at, m.sender_id,
	(SELECT count(*) FROM messages um WHERE um.conversation_id = c.id AND um.sender_id <> ?
		AND um.id > COALESCE((SELECT last_read_id FROM conversation_reads r WHERE r.conversation_id = c.id AND r.user_id = ?), 0))
	FROM conversations c
	JOIN users ua ON ua.id = c.user_a LEFT JOIN profiles pa ON pa.user_id = ua.id
	JOIN users ub ON ub.id = c.user_b LEFT JOIN profiles pb ON pb.user_id = ub.id
	LEFT JOIN messages m ON m.id = c.last_message_id `

func (s *Service) scanConversation(r interface{ Scan(...any) error }) (Conversation, error) {
	var c Conversation
	var a, b Summary
	var pa, pb string
	var mID, mSender sql.NullInt64
	var mContent sql.NullString
	var mAt sql.NullTime
	if err := r.Scan(&c.ID, &c.activity, &a.ID, &a.Username, &pa, &a.IsFollowing, &b.ID, &b.Username, &pb, &b.IsFollowing,
		&mID, &mContent, &mAt, &mSender, &c.UnreadCount); err != nil {
		return c, err
	}
	a.ProfilePicture, b.ProfilePicture = s.pictureURL(pa), s.pictureURL(pb)
	c.Participants = []Summary{a, b}
	if mID.Valid {
		sender := a
		if mSender.Int64 == b.ID {
			sender = b
		}
		c.LastMessage = &Message{ID: mID.Int64, ConversationID: c.ID, Sender: sender, Content: mContent.String, CreatedAt: mAt.Time.UTC().Format(time.RFC3339)}
	}
	return c, nil
}

func (s *Service) conversation(ctx context.Context, me, id int64) (Conversation, error) {
	c, err := s.scanConversation(s.db.QueryRow(ctx, conversationQuery+`WHERE c.id = ? AND (c.user_a = ? OR c.user_b = ?)`, me, me, me, me, id, me, me))
	if errors.Is(err, sql.ErrNoRows) {
		return Conversation{}, ErrNotFound
	}
	if err != nil {
		return Conversation{}, fmt.Errorf("live: conversation: %w", err)
	}
	return c, nil
}

// Conversations lists me's conversations, most recently active first.
func (s *Service) Conversations(ctx context.Context, me int64, p page.Request) ([]Conversation, string, error) {
	// The cursor is "activity:id", activity being the last message id (0
	// for an empty conversation): a total order that new messages only
	// move forward.
	act, id := int64(1<<62), int64(1<<62)
	if t := p.AfterText(); t != "" {
		x, y, ok := strings.Cut(t, ":")
		a, err1 := strconv.ParseInt(x, 10, 64)
		b, err2 := strconv.ParseInt(y, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			return nil, "", page.ErrBadCursor
		}
		act, id = a, b
	}
	rows, err := s.db.Query(ctx, conversationQuery+`WHERE (c.user_a = ? OR c.user_b = ?)
		AND (COALESCE(c.last_message_id, 0) < ? OR (COALESCE(c.last_message_id, 0) = ? AND c.id < ?))
		ORDER BY COALESCE(c.last_message_id, 0) DESC, c.id DESC LIMIT ?`, me, me, me, me, me, me, act, act, id, p.Limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("live: conversations: %w", err)
	}
	defer rows.Close()
	var out []Conversation
	for rows.Next() {
		c, err := s.scanConversation(rows)
		if err != nil {
			return nil, "", fmt.Errorf("live: conversations: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("live: conversations: %w", err)
	}
	next := ""
	if len(out) > p.Limit {
		out = out[:p.Limit]
		last := out[len(out)-1]
		next = page.EncodeText(fmt.Sprintf("%d:%d", last.activity, last.ID))
	}
	return out, next, nil
}

// Messages lists a conversation's messages, newest first, and marks the
// conversation read up to its newest message when the first page is read.
func (s *Service) Messages(ctx context.Context, me, convID int64, p page.Request) ([]Message, string, error) {
	if _, _, err := s.participants(ctx, convID, me); err != nil {
		return nil, "", err
	}
	rows, err := s.db.Query(ctx, `SELECT m.id, m.content, m.created_at, u.id, u.username, COALESCE(pr.picture_key, ''),
		EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = ? AND f.followee_id = u.id)
		FROM messages m JOIN users u ON u.id = m.sender_id LEFT JOIN profiles pr ON pr.user_id = u.id
		WHERE m.conversation_id = ? AND m.id < ? ORDER BY m.id DESC LIMIT ?`, me, convID, p.Before(), p.Limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("live: messages: %w", err)
	}
	defer rows.Close()
	var out []Message
	var keys []int64
	for rows.Next() {
		var m Message
		var pic string
		var at time.Time
		if err := rows.Scan(&m.ID, &m.Content, &at, &m.Sender.ID, &m.Sender.Username, &pic, &m.Sender.IsFollowing); err != nil {
			return nil, "", fmt.Errorf("live: messages: %w", err)
		}
		m.ConversationID, m.CreatedAt, m.Sender.ProfilePicture = convID, at.UTC().Format(time.RFC3339), s.pictureURL(pic)
		out, keys = append(out, m), append(keys, m.ID)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("live: messages: %w", err)
	}
	rows.Close()
	if p.IsFirst() && len(out) > 0 {
		if err := s.markRead(ctx, convID, me, out[0].ID); err != nil {
			return nil, "", err
		}
	}
	out, next := page.Trim(out, keys, p.Limit)
	return out, next, nil
}

func (s *Service) markRead(ctx context.Context, convID, userID, upTo int64) error {
	_, err := s.db.Exec(ctx, `INSERT INTO conversation_reads (conversation_id, user_id, last_read_id) VALUES (?, ?, ?)
		ON CONFLICT (conversation_id, user_id) DO UPDATE SET last_read_id =
		CASE WHEN excluded.last_read_id > conversation_reads.last_read_id THEN excluded.last_read_id ELSE conversation_reads.last_read_id END`,
		convID, userID, upTo)
	if err != nil {
		return fmt.Errorf("live: mark read: %w", err)
	}
	return nil
}

// Send stores a message from me and delivers message.created to both
// participants' sockets at once; the recipient's notification follows by job.
func (s *Service) Send(ctx context.Context, me, convID int64, content string) (Message, error) {
	if strings.TrimSpace(content) == "" {
		return Message{}, &ValidationError{Fields: map[string][]string{"content": {"This field is required."}}}
	}
	if utf8.RuneCountInString(content) > MaxMessageLen {
		return Message{}, &ValidationError{Fields: map[string][]string{"content": {fmt.Sprintf("At most %d characters.", MaxMessageLen)}}}
	}
	a, b, err := s.participants(ctx, convID, me)
	if err != nil {
		return Message{}, err
	}
	other := a
	if other == me {
		other = b
	}
	now := s.now().UTC().Truncate(time.Second)
	m := Message{ConversationID: convID, Content: content, CreatedAt: now.Format(time.RFC3339)}
	var pic string
	err = s.db.InTx(ctx, func(tx *db.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO messages (conversation_id, sender_id, content, created_at) VALUES (?, ?, ?, ?) RETURNING id`,
			convID, me, content, now).Scan(&m.ID); err != nil {
			return fmt.Errorf("live: send: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE conversations SET last_message_id = ? WHERE id = ?`, m.ID, convID); err != nil {
			return fmt.Errorf("live: send: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO conversation_reads (conversation_id, user_id, last_read_id) VALUES (?, ?, ?)
			ON CONFLICT (conversation_id, user_id) DO UPDATE SET last_read_id = excluded.last_read_id`, convID, me, m.ID); err != nil {
			return fmt.Errorf("live: send: %w", err)
		}
		return tx.QueryRow(ctx, `SELECT u.id, u.username, COALESCE(pr.picture_key, '') FROM users u LEFT JOIN profiles pr ON pr.user_id = u.id WHERE u.id = ?`,
			me).Scan(&m.Sender.ID, &m.Sender.Username, &pic)
	})
	if err != nil {
		return Message{}, err
	}
	m.Sender.ProfilePicture = s.pictureURL(pic)
	s.toUser(ctx, me, "message.created", m)
	s.toUser(ctx, other, "message.created", m)
	s.enqueue(ctx, NotifyArgs{Type: TypeMessage, UserID: other, ActorID: me, ConversationID: convID})
	return m, nil
}

// HandleClientFrame serves the client frames that need the domain:
// message.send stores and delivers a message (the sender's sockets get
// message.created like the recipient's); failures answer an error frame.
func (s *Service) HandleClientFrame(ctx context.Context, userID int64, f Frame) *Frame {
	if f.Type != "message.send" {
		return errorFrame("bad_frame", "Unknown frame type.")
	}
	var in struct {
		ConversationID int64  `json:"conversation_id"`
		Content        string `json:"content"`
	}
	if err := json.Unmarshal(f.Data, &in); err != nil || in.ConversationID <= 0 {
		return errorFrame("bad_frame", "message.send needs conversation_id and content.")
	}
	_, err := s.Send(ctx, userID, in.ConversationID, in.Content)
	var verr *ValidationError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound):
		return errorFrame("not_found", "No such conversation.")
	case errors.As(err, &verr):
		return errorFrame("invalid_input", "The message is empty or too long.")
	default:
		s.log.ErrorContext(ctx, "message.send failed", "user_id", userID, "err", err)
		return errorFrame("internal_error", "The message could not be sent.")
	}
}

func errorFrame(code, detail string) *Frame {
	f, _ := NewFrame("error", map[string]string{"code": code, "detail": detail})
	return &f
}

// PresenceChanged tells a user's followers that they came online or went
// offline (on any instance).
func (s *Service) PresenceChanged(ctx context.Context, userID int64, online bool) {
	var name string
	if err := s.db.QueryRow(ctx, `SELECT username FROM users WHERE id = ?`, userID).Scan(&name); err != nil {
		return
	}
	ids, err := s.db.QueryInt64s(ctx, `SELECT follower_id FROM follows WHERE followee_id = ?`, userID)
	if err != nil {
		s.log.WarnContext(ctx, "presence followers", "err", err)
		return
	}
	for _, id := range ids {
		s.toUser(ctx, id, "presence", map[string]any{"username": name, "online": online})
	}
}
