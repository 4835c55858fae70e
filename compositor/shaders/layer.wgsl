// Layers into an eye buffer: one full-screen triangle per layer. Every pixel is a view
// direction at the display pose; it is rotated into the layer's space (projection: the
// app's render pose, the timewarp; quad: the quad's plane) and sampled from the layer's
// sub-image. Output is premultiplied (blend ONE, ONE_MINUS_SRC_ALPHA).

struct Layer {
    eye_tan: vec4<f32>, // tan of the eye buffer's left, right, up, down edges
    rot0: vec4<f32>,    // rows of the rotation display-eye -> layer; .w: kind (0 projection, 1 quad)
    rot1: vec4<f32>,    // .w: flags (1: use source alpha, 2: unpremultiplied)
    rot2: vec4<f32>,    // .w: array layer
    param: vec4<f32>,   // projection: the layer's tangents; quad: the eye's position in quad space
    rect: vec4<f32>,    // sub-image: u0, v0, u1, v1
    size: vec4<f32>,    // quad: half width, half height
};

var<push_constant> pc: Layer;
@group(0) @binding(0) var tex: texture_2d_array<f32>;
@group(0) @binding(1) var samp: sampler;

struct VsOut {
    @builtin(position) pos: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

@vertex
fn vs_main(@builtin(vertex_index) i: u32) -> VsOut {
    let uv = vec2<f32>(f32((i << 1u) & 2u), f32(i & 2u));
    var o: VsOut;
    o.pos = vec4<f32>(uv * 2.0 - 1.0, 0.0, 1.0);
    o.uv = uv;
    return o;
}

@fragment
fn fs_main(in: VsOut) -> @location(0) vec4<f32> {
    let tx = mix(pc.eye_tan.x, pc.eye_tan.y, in.uv.x);
    let ty = mix(pc.eye_tan.z, pc.eye_tan.w, in.uv.y);
    let d = vec3<f32>(tx, ty, -1.0);
    let r = vec3<f32>(dot(pc.rot0.xyz, d), dot(pc.rot1.xyz, d), dot(pc.rot2.xyz, d));
    let kind = u32(pc.rot0.w);
    let flags = u32(pc.rot1.w);
    var uv = vec2<f32>(-1.0, -1.0);
    if kind == 0u {
        if r.z < -1e-6 {
            let p = r.xy / -r.z;
            uv = vec2<f32>(
                (p.x - pc.param.x) / (pc.param.y - pc.param.x),
                (pc.param.z - p.y) / (pc.param.z - pc.param.w),
            );
        }
    } else {
        if abs(r.z) > 1e-6 {
            let t = -pc.param.z / r.z;
            if t > 0.0 {
                let hit = pc.param.xy + t * r.xy;
                uv = vec2<f32>(hit.x / (2.0 * pc.size.x) + 0.5, 0.5 - hit.y / (2.0 * pc.size.y));
            }
        }
    }
    if uv.x < 0.0 || uv.y < 0.0 || uv.x > 1.0 || uv.y > 1.0 {
        return vec4<f32>(0.0, 0.0, 0.0, 0.0);
    }
    let st = mix(pc.rect.xy, pc.rect.zw, uv);
    var c = textureSampleLevel(tex, samp, st, i32(pc.rot2.w), 0.0);
    if (flags & 1u) == 0u {
        c.a = 1.0;
    }
    if (flags & 2u) != 0u {
        c = vec4<f32>(c.rgb * c.a, c.a);
    }
    return c;
}
