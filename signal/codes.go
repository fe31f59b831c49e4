package signal

// Errors of package room, sfu and auth as protocol error codes. Pure
// functions.

import (
	"errors"

	"github.com/roundtable-sfu/roundtable/internal/auth"
	"github.com/roundtable-sfu/roundtable/room"
	"github.com/roundtable-sfu/roundtable/sfu"
)

// decodeErrorCode maps a Decode error to its code.
func decodeErrorCode(err error) string {
	switch {
	case errors.Is(err, ErrBadJSON):
		return CodeBadJSON
	case errors.Is(err, ErrUnknownType):
		return CodeUnknownType
	default:
		return CodeBadMessage
	}
}

// errorCode maps room and sfu errors to protocol codes.
func errorCode(err error) string {
	switch {
	case errors.Is(err, room.ErrBadRoomName):
		return CodeBadRoom
	case errors.Is(err, room.ErrBadName):
		return CodeBadName
	case errors.Is(err, room.ErrRoomFull):
		return CodeRoomFull
	case errors.Is(err, room.ErrTooManyRooms):
		return CodeTooManyRooms
	case errors.Is(err, room.ErrDataRate):
		return CodeDataRate
	case errors.Is(err, room.ErrBadTrackUpdate):
		return CodeBadMessage
	case errors.Is(err, room.ErrUnknownTrack):
		return CodeUnknownTrack
	case errors.Is(err, room.ErrClosed):
		return CodeShuttingDown
	case errors.Is(err, room.ErrTooManyProbes):
		return CodeTooManyProbes
	case errors.Is(err, room.ErrTooManyTracks):
		return CodeTooManyTracks
	case errors.Is(err, room.ErrPublishNotAllowed):
		return CodePublishNotAllowed
	case errors.Is(err, room.ErrDataNotAllowed):
		return CodeDataNotAllowed
	case errors.Is(err, auth.ErrMissing):
		return CodeAuthRequired
	case errors.Is(err, auth.ErrExpired):
		return CodeTokenExpired
	case errors.Is(err, auth.ErrNotYetValid):
		return CodeTokenNotYetValid
	case errors.Is(err, auth.ErrWrongRoom):
		return CodeTokenWrongRoom
	case errors.Is(err, auth.ErrNoGrants):
		return CodeTokenNoGrants
	case errors.Is(err, auth.ErrSignature), errors.Is(err, auth.ErrMalformed):
		return CodeTokenInvalid
	case errors.Is(err, sfu.ErrNegotiationFailed):
		return CodeNegotiationFailed
	case errors.Is(err, sfu.ErrBadSDP):
		return CodeBadSDP
	case errors.Is(err, sfu.ErrDataTooLarge):
		return CodeDataTooLarge
	case errors.Is(err, sfu.ErrCodecNotNegotiated):
		return CodeCodecNotSupported
	case errors.Is(err, sfu.ErrDataChannelLabel):
		return CodeDataChannelRefused
	case errors.Is(err, sfu.ErrBusy):
		return CodeBusy
	}
	return CodeInternal
}
