package sfu

// Frame sizes from keyframes, so a subscriber's viewport can pick the
// smallest simulcast layer that fills it. Each parser reads only the
// payload of one packet, never allocates, and reports ok=false when the
// packet does not carry a size.

// vp8Size reads the frame size from a VP8 keyframe (RFC 6386 §9.1): after
// the payload descriptor, a 3-byte frame tag, the start code 9d 01 2a,
// then 14-bit width and height, little-endian.
func vp8Size(p []byte) (w, h int, ok bool) {
	i := vp8HeaderOffset(p)
	if i < 0 {
		return 0, 0, false
	}
	return VP8FrameSize(p[i:])
}

// VP8FrameSize reads the picture size from a VP8 frame (no RTP payload
// descriptor): a keyframe's start code and 14-bit width and height (RFC
// 6386 §9.1). ok is false for an interframe or a short one.
func VP8FrameSize(f []byte) (w, h int, ok bool) {
	if len(f) < 10 || f[0]&0x01 != 0 || f[3] != 0x9d || f[4] != 0x01 || f[5] != 0x2a {
		return 0, 0, false
	}
	w = int(f[6]) | int(f[7]&0x3f)<<8
	h = int(f[8]) | int(f[9]&0x3f)<<8
	return w, h, w > 0 && h > 0
}

// vp9Size reads the scalability structure that a VP9 keyframe's payload
// descriptor carries (RFC 9628 §4.2 and §4.2.1, V bit) and returns the
// size of its highest spatial layer.
func vp9Size(p []byte) (w, h int, ok bool) {
	if len(p) < 1 {
		return 0, 0, false
	}
	b0 := p[0]
	pic, lay, flex, inter, ss := b0&0x80 != 0, b0&0x20 != 0, b0&0x10 != 0, b0&0x40 != 0, b0&0x02 != 0
	if !ss {
		return 0, 0, false
	}
	i := 1
	if pic {
		if len(p) <= i {
			return 0, 0, false
		}
		if p[i]&0x80 != 0 { // M: 15-bit picture id
			i++
		}
		i++
	}
	if lay {
		i++
		if !flex {
			i++ // TL0PICIDX
		}
	}
	if flex && inter { // up to 3 reference indices, N bit chains them
		for n := 0; n < 3; n++ {
			if len(p) <= i {
				return 0, 0, false
			}
			more := p[i]&0x01 != 0
			i++
			if !more {
				break
			}
		}
	}
	if len(p) <= i {
		return 0, 0, false
	}
	layers, hasSize := int(p[i]>>5)+1, p[i]&0x10 != 0
	i++
	if !hasSize || len(p) < i+4*layers {
		return 0, 0, false
	}
	top := i + 4*(layers-1)
	w = int(p[top])<<8 | int(p[top+1])
	h = int(p[top+2])<<8 | int(p[top+3])
	return w, h, w > 0 && h > 0
}

// h264Size finds a sequence parameter set (directly, in a STAP-A
// aggregate, or at the start of an FU-A fragment; RFC 6184 §5) and
// returns the cropped frame size it declares (H.264 §7.3.2.1.1).
func h264Size(p []byte) (w, h int, ok bool) {
	if len(p) < 2 {
		return 0, 0, false
	}
	switch p[0] & 0x1f {
	case 7:
		return spsSize(p[1:])
	case 24: // STAP-A
		for i := 1; i+2 < len(p); {
			size := int(p[i])<<8 | int(p[i+1])
			i += 2
			if size == 0 || i+size > len(p) {
				return 0, 0, false
			}
			if p[i]&0x1f == 7 {
				return spsSize(p[i+1 : i+size])
			}
			i += size
		}
	case 28: // FU-A
		if p[1]&0x80 != 0 && p[1]&0x1f == 7 {
			return spsSize(p[2:])
		}
	}
	return 0, 0, false
}

// spsSize parses an SPS payload (after the NAL header) up to the frame
// cropping fields.
func spsSize(b []byte) (w, h int, ok bool) {
	r := bitReader{b: b}
	profile := r.bits(8)
	r.bits(16) // constraint flags, level
	r.ue()     // seq_parameter_set_id
	chroma := uint32(1)
	switch profile {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		chroma = r.ue()
		if chroma == 3 {
			r.bits(1) // separate_colour_plane_flag
		}
		r.ue()              // bit_depth_luma_minus8
		r.ue()              // bit_depth_chroma_minus8
		r.bits(1)           // qpprime_y_zero_transform_bypass_flag
		if r.bits(1) == 1 { // seq_scaling_matrix_present_flag
			lists := 8
			if chroma == 3 {
				lists = 12
			}
			for i := 0; i < lists; i++ {
				if r.bits(1) == 1 {
					size := 16
					if i >= 6 {
						size = 64
					}
					r.skipScalingList(size)
				}
			}
		}
	}
	r.ue()          // log2_max_frame_num_minus4
	switch r.ue() { // pic_order_cnt_type
	case 0:
		r.ue() // log2_max_pic_order_cnt_lsb_minus4
	case 1:
		r.bits(1) // delta_pic_order_always_zero_flag
		r.se()    // offset_for_non_ref_pic
		r.se()    // offset_for_top_to_bottom_field
		n := r.ue()
		for i := uint32(0); i < n && !r.bad; i++ {
			r.se()
		}
	}
	r.ue()    // max_num_ref_frames
	r.bits(1) // gaps_in_frame_num_value_allowed_flag
	wMbs, hUnits := r.ue()+1, r.ue()+1
	frameMbsOnly := r.bits(1)
	if frameMbsOnly == 0 {
		r.bits(1) // mb_adaptive_frame_field_flag
	}
	r.bits(1) // direct_8x8_inference_flag
	var left, right, top, bottom uint32
	if r.bits(1) == 1 {
		left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
	}
	if r.bad || wMbs > 1024 || hUnits > 1024 {
		return 0, 0, false
	}
	// Crop units (H.264 Table 6-1 and equations 7-19 to 7-22).
	cropX, cropY := uint32(1), 2-frameMbsOnly
	switch chroma {
	case 1: // 4:2:0
		cropX, cropY = 2, 2*(2-frameMbsOnly)
	case 2: // 4:2:2
		cropX = 2
	}
	fw := int(wMbs*16) - int(cropX*(left+right))
	fh := int((2-frameMbsOnly)*hUnits*16) - int(cropY*(top+bottom))
	return fw, fh, fw > 0 && fh > 0
}

// bitReader reads an H.264 RBSP bit by bit, skipping emulation prevention
// bytes (00 00 03); reading past the end sets bad.
type bitReader struct {
	b     []byte
	i     int // byte
	n     uint
	zeros int // zero bytes just read
	bad   bool
}

func (r *bitReader) bit() uint32 {
	if r.n == 0 && r.zeros >= 2 && r.i < len(r.b) && r.b[r.i] == 3 {
		r.i++ // emulation_prevention_three_byte
		r.zeros = 0
	}
	if r.i >= len(r.b) {
		r.bad = true
		return 0
	}
	v := uint32(r.b[r.i]>>(7-r.n)) & 1
	r.n++
	if r.n == 8 {
		if r.b[r.i] == 0 {
			r.zeros++
		} else {
			r.zeros = 0
		}
		r.n = 0
		r.i++
	}
	return v
}

func (r *bitReader) bits(n int) uint32 {
	var v uint32
	for ; n > 0; n-- {
		v = v<<1 | r.bit()
	}
	return v
}

// ue reads an unsigned Exp-Golomb code (H.264 §9.1).
func (r *bitReader) ue() uint32 {
	zeros := 0
	for r.bit() == 0 {
		if zeros++; zeros > 31 || r.bad {
			r.bad = true
			return 0
		}
	}
	return 1<<zeros - 1 + r.bits(zeros)
}

// se reads a signed Exp-Golomb code.
func (r *bitReader) se() int32 {
	v := r.ue()
	if v&1 == 1 {
		return int32(v/2) + 1
	}
	return -int32(v / 2)
}

// skipScalingList reads past one scaling_list() (H.264 §7.3.2.1.1.1).
func (r *bitReader) skipScalingList(size int) {
	last, next := int32(8), int32(8)
	for j := 0; j < size && !r.bad; j++ {
		if next != 0 {
			next = (last + r.se() + 256) % 256
		}
		if next != 0 {
			last = next
		}
	}
}
