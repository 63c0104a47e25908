// Fixed catalogues of the domain (SPEC §3): massage techniques and body regions.
export const techniques = [
  'swedish',
  'deep_tissue',
  'trigger_point',
  'myofascial_release',
  'neuromuscular',
  'lymphatic_drainage',
  'sports',
  'craniosacral',
  'prenatal',
  'cupping',
  'hydrotherapy',
] as const;
export type Technique = (typeof techniques)[number];

export const bodyRegions = [
  'head',
  'face_jaw',
  'neck',
  'upper_back',
  'mid_back',
  'lower_back',
  'sacrum_pelvis',
  'chest',
  'abdomen',
  'shoulder_left',
  'shoulder_right',
  'arm_left',
  'arm_right',
  'forearm_wrist_hand_left',
  'forearm_wrist_hand_right',
  'hip_left',
  'hip_right',
  'thigh_left',
  'thigh_right',
  'knee_left',
  'knee_right',
  'leg_left',
  'leg_right',
  'ankle_foot_left',
  'ankle_foot_right',
] as const;
export type BodyRegion = (typeof bodyRegions)[number];
