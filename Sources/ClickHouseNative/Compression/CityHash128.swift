/// CityHash128 as of CityHash v1.0.2, the version ClickHouse uses for compressed-frame checksums.
/// (Later CityHash releases give different values.) Written from the published algorithm.
public enum CityHash128 {
    static let k0: UInt64 = 0xC3A5_C85C_97CB_3127
    static let k1: UInt64 = 0xB492_B66F_BE98_F273
    static let k2: UInt64 = 0x9AE1_6A3B_2F90_404F
    static let k3: UInt64 = 0xC949_D7C7_509E_6557

    /// The hash as (first, second); the frame checksum holds `first` then `second`, each little-endian.
    public static func hash(_ bytes: UnsafeRawBufferPointer) -> (first: UInt64, second: UInt64) {
        let s = bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!
        let len = bytes.count
        if len >= 16 {
            return withSeed(s + 16, len - 16, (fetch64(s) ^ k3, fetch64(s + 8)))
        } else if len >= 8 {
            return withSeed(s, 0, (fetch64(s) ^ (UInt64(len) &* k0), fetch64(s + len - 8) ^ k1))
        } else {
            return withSeed(s, len, (k0, k1))
        }
    }

    public static func hash(_ bytes: [UInt8]) -> (first: UInt64, second: UInt64) {
        bytes.withUnsafeBytes { hash($0) }
    }

    @inline(__always) static func fetch64(_ p: UnsafeRawPointer) -> UInt64 { UInt64(littleEndian: p.loadUnaligned(as: UInt64.self)) }
    @inline(__always) static func fetch32(_ p: UnsafeRawPointer) -> UInt64 { UInt64(UInt32(littleEndian: p.loadUnaligned(as: UInt32.self))) }
    @inline(__always) static func rotate(_ v: UInt64, _ shift: Int) -> UInt64 { shift == 0 ? v : (v >> UInt64(shift)) | (v << UInt64(64 - shift)) }
    @inline(__always) static func shiftMix(_ v: UInt64) -> UInt64 { v ^ (v >> 47) }

    @inline(__always) static func hashLen16(_ u: UInt64, _ v: UInt64) -> UInt64 {
        let mul: UInt64 = 0x9DDF_EA08_EB38_2D69
        var a = (u ^ v) &* mul
        a ^= a >> 47
        var b = (v ^ a) &* mul
        b ^= b >> 47
        return b &* mul
    }

    static func hashLen0to16(_ s: UnsafeRawPointer, _ len: Int) -> UInt64 {
        if len > 8 {
            let a = fetch64(s)
            let b = fetch64(s + len - 8)
            // RotateByAtLeast1: len is 9...16 here, so the shift is never 0 or 64.
            let r = b &+ UInt64(len)
            return hashLen16(a, (r >> UInt64(len)) | (r << UInt64(64 - len))) ^ b
        }
        if len >= 4 {
            let a = fetch32(s)
            return hashLen16(UInt64(len) &+ (a << 3), fetch32(s + len - 4))
        }
        if len > 0 {
            let a = UInt32(s.load(as: UInt8.self))
            let b = UInt32(s.load(fromByteOffset: len >> 1, as: UInt8.self))
            let c = UInt32(s.load(fromByteOffset: len - 1, as: UInt8.self))
            let y = a &+ (b << 8)
            let z = UInt32(len) &+ (c << 2)
            return shiftMix((UInt64(y) &* k2) ^ (UInt64(z) &* k3)) &* k2
        }
        return k2
    }

    @inline(__always)
    static func weakHashLen32WithSeeds(_ w: UInt64, _ x: UInt64, _ y: UInt64, _ z: UInt64, _ a: UInt64, _ b: UInt64) -> (UInt64, UInt64) {
        var a = a &+ w
        var b = rotate(b &+ a &+ z, 21)
        let c = a
        a = a &+ x
        a = a &+ y
        b = b &+ rotate(a, 44)
        return (a &+ z, b &+ c)
    }

    @inline(__always)
    static func weakHashLen32WithSeeds(_ s: UnsafeRawPointer, _ a: UInt64, _ b: UInt64) -> (UInt64, UInt64) {
        weakHashLen32WithSeeds(fetch64(s), fetch64(s + 8), fetch64(s + 16), fetch64(s + 24), a, b)
    }

    static func cityMurmur(_ s: UnsafeRawPointer, _ len: Int, _ seed: (UInt64, UInt64)) -> (UInt64, UInt64) {
        var a = seed.0
        var b = seed.1
        var c: UInt64 = 0
        var d: UInt64 = 0
        var l = len - 16
        if l <= 0 {
            a = shiftMix(a &* k1) &* k1
            c = b &* k1 &+ hashLen0to16(s, len)
            d = shiftMix(a &+ (len >= 8 ? fetch64(s) : c))
        } else {
            c = hashLen16(fetch64(s + len - 8) &+ k1, a)
            d = hashLen16(b &+ UInt64(len), c &+ fetch64(s + len - 16))
            a = a &+ d
            var p = s
            repeat {
                a ^= shiftMix(fetch64(p) &* k1) &* k1
                a = a &* k1
                b ^= a
                c ^= shiftMix(fetch64(p + 8) &* k1) &* k1
                c = c &* k1
                d ^= c
                p += 16
                l -= 16
            } while l > 0
        }
        a = hashLen16(a, c)
        b = hashLen16(d, b)
        return (a ^ b, hashLen16(b, a))
    }

    static func withSeed(_ start: UnsafeRawPointer, _ length: Int, _ seed: (UInt64, UInt64)) -> (first: UInt64, second: UInt64) {
        if length < 128 {
            let r = cityMurmur(start, length, seed)
            return (r.0, r.1)
        }
        var s = start
        var len = length
        var x = seed.0
        var y = seed.1
        var z = UInt64(len) &* k1
        var v: (UInt64, UInt64) = (0, 0)
        var w: (UInt64, UInt64) = (0, 0)
        v.0 = rotate(y ^ k1, 49) &* k1 &+ fetch64(s)
        v.1 = rotate(v.0, 42) &* k1 &+ fetch64(s + 8)
        w.0 = rotate(y &+ z, 35) &* k1 &+ x
        w.1 = rotate(x &+ fetch64(s + 88), 53) &* k1
        repeat {
            for _ in 0..<2 {
                x = rotate(x &+ y &+ v.0 &+ fetch64(s + 16), 37) &* k1
                y = rotate(y &+ v.1 &+ fetch64(s + 48), 42) &* k1
                x ^= w.1
                y ^= v.0
                z = rotate(z ^ w.0, 33)
                v = weakHashLen32WithSeeds(s, v.1 &* k1, x &+ w.0)
                w = weakHashLen32WithSeeds(s + 32, z &+ w.1, y)
                swap(&z, &x)
                s += 64
            }
            len -= 128
        } while len >= 128
        y = y &+ rotate(w.0, 37) &* k0 &+ z
        x = x &+ rotate(v.0 &+ z, 49) &* k0
        var tailDone = 0
        while tailDone < len {
            tailDone += 32
            y = rotate(y &- x, 42) &* k0 &+ v.1
            w.0 = w.0 &+ fetch64(s + len - tailDone + 16)
            x = rotate(x, 49) &* k0 &+ w.0
            w.0 = w.0 &+ v.0
            v = weakHashLen32WithSeeds(s + len - tailDone, v.0, v.1)
        }
        x = hashLen16(x, v.0)
        y = hashLen16(y, w.0)
        return (hashLen16(x &+ v.1, w.1) &+ y, hashLen16(x &+ w.1, y &+ v.1))
    }
}
