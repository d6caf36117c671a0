package httpapi

// routes lists every route of the server in one place.
func (s *server) routes() {
	// Operations
	s.handle("GET /healthz", s.handleHealth())
	s.handle("GET /readyz", s.handleReady())
	s.handle("GET /metrics", s.handleMetrics())
	s.handle("GET /api/openapi.yaml", s.handleOpenAPI())
	s.handle("GET /static/", s.handleStatic())

	// Accounts: cookie flow (Videoflix-compatible)
	s.handle("POST /api/register/{$}", s.handleRegister())
	s.handle("GET /api/activate/{uidb64}/{token}/{$}", s.handleActivate())
	s.handle("POST /api/login/{$}", s.handleLogin())
	s.handle("POST /api/logout/{$}", s.handleLogout())
	s.handle("POST /api/token/refresh/{$}", s.handleRefresh())
	s.handle("POST /api/password_reset/{$}", s.handlePasswordReset())
	s.handle("POST /api/password_confirm/{uidb64}/{token}/{$}", s.handlePasswordConfirm())
	// Accounts: Bearer flow (simplejwt-compatible)
	s.handle("POST /api/token/{$}", s.handleTokenObtain())

	// Profiles and the follow graph
	s.handle("GET /api/users/me/{$}", s.requireUser(s.handleMe()))
	s.handle("PATCH /api/users/me/{$}", s.requireUser(s.handleUpdateMe()))
	s.handle("DELETE /api/users/me/{$}", s.requireUser(s.handleDeleteMe()))
	s.handle("PUT /api/users/me/images/{$}", s.requireUser(s.handleProfileImages()))
	s.handle("GET /api/users/{$}", s.optionalUser(s.handleUserSearch()))
	s.handle("GET /api/users/{username}/{$}", s.optionalUser(s.handleProfile()))
	s.handle("POST /api/users/{username}/follow/{$}", s.requireUser(s.handleFollow()))
	s.handle("DELETE /api/users/{username}/follow/{$}", s.requireUser(s.handleUnfollow()))
	s.handle("GET /api/users/{username}/followers/{$}", s.optionalUser(s.handleFollowList(true)))
	s.handle("GET /api/users/{username}/following/{$}", s.optionalUser(s.handleFollowList(false)))
	s.handle("GET /api/users/{username}/posts/{$}", s.optionalUser(s.handleUserPosts()))
	s.handle("GET /api/suggestions/{$}", s.requireUser(s.handleSuggestions()))

	// Posts, comments, likes, feeds
	s.handle("POST /api/posts/{$}", s.requireUser(s.handleCreatePost()))
	s.handle("GET /api/posts/{id}/{$}", s.optionalUser(s.handleGetPost()))
	s.handle("PATCH /api/posts/{id}/{$}", s.requireUser(s.handleUpdatePost()))
	s.handle("DELETE /api/posts/{id}/{$}", s.requireUser(s.handleDeletePost()))
	s.handle("POST /api/posts/{id}/like/{$}", s.requireUser(s.handleLike()))
	s.handle("DELETE /api/posts/{id}/like/{$}", s.requireUser(s.handleUnlike()))
	s.handle("GET /api/posts/{id}/comments/{$}", s.optionalUser(s.handleComments()))
	s.handle("POST /api/posts/{id}/comments/{$}", s.requireUser(s.handleAddComment()))
	s.handle("DELETE /api/comments/{id}/{$}", s.requireUser(s.handleDeleteComment()))
	s.handle("GET /api/feed/{$}", s.requireUser(s.handleHomeFeed()))
	s.handle("GET /api/feed/global/{$}", s.optionalUser(s.handleGlobalFeed()))
	s.handle("GET /api/trends/{$}", s.optionalUser(s.handleTrends()))
	s.handle("GET /api/hashtags/{tag}/{$}", s.optionalUser(s.handleHashtag()))

	// Uploads and media
	if s.uploads != nil {
		s.handle("/api/uploads/", s.uploads)
	}
	s.handle("POST /api/media/{$}", s.requireUser(s.handleCreateMedia()))
	s.handle("GET /api/media/{id}/{$}", s.requireUser(s.handleGetMedia()))
	s.handle("GET /api/media/{id}/hls/master.m3u8", s.requireUser(s.handleMediaHLS(0)))
	s.handle("GET /api/media/{id}/hls/{res}/index.m3u8", s.requireUser(s.handleMediaHLS(1)))
	s.handle("GET /api/media/{id}/hls/{res}/{segment}/{$}", s.requireUser(s.handleMediaHLS(2)))

	// Video catalog (Videoflix-compatible)
	s.handle("GET /api/video/{$}", s.requireUser(s.handleVideoList()))
	s.handle("GET /api/video/{id}/master.m3u8", s.requireUser(s.handleVideoHLS(0)))
	s.handle("GET /api/video/{id}/{res}/index.m3u8", s.requireUser(s.handleVideoHLS(1)))
	s.handle("GET /api/video/{id}/{res}/{segment}/{$}", s.requireUser(s.handleVideoHLS(2)))
	s.handle("GET /api/admin/videos/{$}", s.requireStaff(s.handleAdminVideoList()))
	s.handle("POST /api/admin/videos/{$}", s.requireStaff(s.handleAdminVideoCreate()))
	s.handle("POST /api/admin/videos/{id}/retry/{$}", s.requireStaff(s.handleAdminVideoRetry()))
	s.handle("DELETE /api/admin/videos/{id}/{$}", s.requireStaff(s.handleAdminVideoDelete()))

	// Notifications, chat and live events
	s.handle("GET /api/notifications/{$}", s.requireUser(s.handleNotifications()))
	s.handle("GET /api/notifications/unread_count/{$}", s.requireUser(s.handleUnreadCount()))
	s.handle("POST /api/notifications/read/{$}", s.requireUser(s.handleMarkRead()))
	s.handle("GET /api/conversations/{$}", s.requireUser(s.handleConversations()))
	s.handle("POST /api/conversations/{$}", s.requireUser(s.handleOpenConversation()))
	s.handle("GET /api/conversations/{id}/messages/{$}", s.requireUser(s.handleMessages()))
	s.handle("POST /api/conversations/{id}/messages/{$}", s.requireUser(s.handleSendMessage()))
	s.handle("GET /api/presence/{$}", s.requireUser(s.handlePresence()))
	s.handle("GET /api/ws/{$}", s.handleWebSocket())

	// Stored public files (profile images, post images, video thumbnails)
	s.handle("GET /media/{key...}", s.handleMediaFile())
}
